"""The bad-input matrix: each row is one task's media, sent to /predict in one batch with a good
task; the row gets its expected answer (a valid prediction, or no prediction and one log line
naming the task and the reason), and the good task's prediction is the same as when it is alone.

Every network address used is a loopback one (127.0.0.1, 127.0.0.2)."""

from __future__ import annotations

import socket
import subprocess
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from label_studio_sdk.label_interface import LabelInterface
from PIL import Image

from empathic.labelstudio.cache import MemoryCache
from empathic.labelstudio.server import create_app
from empathic.labelstudio.service import AnalysisService
from empathic.labelstudio.settings import BackendSettings
from media_factory import head, moving_face_video, numbered_video

CONFIGS = Path(__file__).resolve().parents[1] / "labeling_configs"
VIDEO_CONFIG = (CONFIGS / "basic_emotions.xml").read_text()
AUDIO_CONFIG = ('<View><Audio name="audio" value="$audio"/><Labels name="voice" toName="audio" '
                'model_segmentation="vad"><Label value="Sadness"/><Label value="Amusement"/></Labels></View>')
BOTH_CONFIG = (CONFIGS / "video_face_voice.xml").read_text()


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


class _Servers:
    """Loopback HTTP servers for the URL rows."""

    def __init__(self):
        self.started = []

    def serve(self, address: str, handle) -> str:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                handle(self)

        server = ThreadingHTTPServer((address, 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.started.append(server)
        return f"{address}:{server.server_port}"

    def close(self):
        for server in self.started:
            server.shutdown()
            server.server_close()


def _status(code: int):
    def handle(handler):
        handler.send_response(code)
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"no")
    return handle


def _redirect(location: str):
    def handle(handler):
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return handle


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge frame (and holds no pixels)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def world(tmp_path_factory, two_voices, voice_hub_cache):
    d = tmp_path_factory.mktemp("matrix")
    good_video, _ = moving_face_video(d / "good.mp4", seconds=2.0, fps=25, faces=1)
    m = {"good_video": good_video, "good_audio": two_voices.path}
    (d / "empty.mp4").write_bytes(b"")
    m["empty"] = d / "empty.mp4"
    data = good_video.read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 3])
    m["truncated"] = d / "truncated.mp4"
    (d / "notes.mp4").write_text("these are my notes, not a video")
    m["text_as_mp4"] = d / "notes.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:duration=2", "-c:a", "aac", str(d / "sound_only.mp4"))
    m["no_video_stream"] = d / "sound_only.mp4"
    m["silent_video"] = good_video
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=0.04", "-frames:v", "0", "-c:v", "libx264",
           str(d / "zero_frames.mp4"))
    m["zero_frames"] = d / "zero_frames.mp4"
    m["vfr"] = numbered_video(d / "vfr.mp4", 20, times_s=[0.0, 0.04, 0.1, 0.3, 0.31, 0.5, 0.9, 1.0, 1.05, 1.3, 1.35,
                                                           1.4, 1.6, 1.7, 1.75, 1.9, 2.0, 2.1, 2.3, 2.5])
    ffmpeg("-i", str(good_video), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(d / "rotated.mp4"))
    m["rotated"] = d / "rotated.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=3840x2160:rate=25:duration=0.5", "-c:v", "libx264", "-preset",
           "ultrafast", "-pix_fmt", "yuv420p", str(d / "uhd.mp4"))
    m["4k"] = d / "uhd.mp4"
    ffmpeg("-i", str(good_video), "-t", "1", "-c:v", "libx265", "-pix_fmt", "yuv420p10le", "-x265-params",
           "log-level=error", str(d / "hevc10.mp4"))
    m["hevc_10bit"] = d / "hevc10.mp4"
    for w, h in ((1, 1), (7, 5)):
        ffmpeg("-f", "lavfi", "-i", "color=c=gray:size=8x8:rate=25:duration=0.5", "-vf", f"scale={w}:{h}",
               "-c:v", "ffv1", str(d / f"tiny_{w}x{h}.mkv"))
        m[f"size_{w}x{h}"] = d / f"tiny_{w}x{h}.mkv"
    (d / "huge.png").write_bytes(_png_claiming(200_000, 100_000))
    m["huge_header"] = d / "huge.png"
    ffmpeg("-i", str(two_voices.path), "-ar", "8000", str(d / "narrow.wav"))
    m["audio_8k"] = d / "narrow.wav"
    ffmpeg("-i", str(two_voices.path), "-af", "pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0", str(d / "six.wav"))
    m["audio_6ch"] = d / "six.wav"
    face = head()
    Image.fromarray(np.dstack([face, np.full(face.shape[:2], 200, np.uint8)]), "RGBA").save(d / "alpha.png")
    m["png_alpha"] = d / "alpha.png"
    Image.fromarray(face).convert("L").save(d / "grey.jpg")
    m["jpeg_grey"] = d / "grey.jpg"
    Image.fromarray(face).convert("CMYK").save(d / "cmyk.jpg")
    m["jpeg_cmyk"] = d / "cmyk.jpg"
    frames = [Image.fromarray(np.roll(face, shift, axis=1)) for shift in (0, 4, 8, 12)]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    m["gif"] = d / "anim.gif"
    root = d / "ls-root"
    (root / "videos").mkdir(parents=True)
    servers = _Servers()
    hosts = {
        "hang": servers.serve("127.0.0.1", lambda h: threading.Event().wait(5)),
        "private_target": servers.serve("127.0.0.2", _status(200)),
        **{f"status_{code}": servers.serve("127.0.0.1", _status(code)) for code in (401, 403, 404, 500)},
    }
    hosts["loop"] = servers.serve("127.0.0.1", lambda h: _redirect(h.path + "x")(h))
    hosts["to_private"] = servers.serve("127.0.0.1", _redirect(f"http://{hosts['private_target']}/secret.mp4"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        hosts["refusing"] = f"127.0.0.1:{probe.getsockname()[1]}"  # nothing listens there
    settings = BackendSettings(device="cpu", precision="fp32", media_cache_dir=d / "cache", model_version="m",
                               face_pps=2.0, media_roots=f"{d},{Path(two_voices.path).parent}",
                               local_files_root=root, media_timeout_s=1.0,
                               allowed_media_hosts=",".join(v for k, v in hosts.items() if k != "private_target"))
    app = create_app(AnalysisService(settings, cache=MemoryCache())).test_client()
    yield {"media": m, "hosts": hosts, "app": app, "root": d}
    servers.close()


def _predict(app, config: str, tasks: list[dict]) -> list:
    response = app.post("/predict", json={"tasks": tasks, "label_config": config, "project": "9.1"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["results"]


# (row, config, media value: a key of the media or a function of the world, expectation): "prediction" for
# a valid prediction (possibly with no region), else a fragment of the task's one-line error.
ROWS = [
    ("missing file", "video", lambda w: str(w["root"] / "nope.mp4"), "no such file"),
    ("0 bytes", "video", "empty", "empty.mp4"),
    ("truncated mp4", "video", "truncated", "truncated.mp4: not a readable media file"),
    ("text file renamed .mp4", "video", "text_as_mp4", "notes.mp4"),
    ("no video stream", "video", "no_video_stream", "has no video stream"),
    ("video without sound asked for voice", "both", "silent_video", "has no audio stream"),
    ("0-duration video", "video", "zero_frames", "zero_frames.mp4"),
    ("variable frame rate", "video", "vfr", "prediction"),
    ("rotated phone video", "video", "rotated", "prediction"),
    ("4K", "video", "4k", "prediction"),
    ("10-bit HEVC", "video", "hevc_10bit", "prediction"),
    ("1x1 video", "video", "size_1x1", "prediction"),
    ("7x5 video", "video", "size_7x5", "prediction"),
    ("header claiming a huge frame", "video", "huge_header", "more than MAX_FRAME_PIXELS"),
    ("8 kHz audio", "audio", "audio_8k", "prediction"),
    ("6-channel audio", "audio", "audio_6ch", "prediction"),
    ("PNG with alpha", "video", "png_alpha", "prediction"),
    ("grayscale JPEG", "video", "jpeg_grey", "prediction"),
    ("CMYK JPEG", "video", "jpeg_cmyk", "prediction"),
    ("animated GIF", "video", "gif", "prediction"),
    ("URL refusing connections", "video", lambda w: f"http://{w['hosts']['refusing']}/a.mp4", "connection refused"),
    ("URL that never answers", "video", lambda w: f"http://{w['hosts']['hang']}/a.mp4", "no answer within 1 s"),
    ("URL looping redirects", "video", lambda w: f"http://{w['hosts']['loop']}/a.mp4", "more than 10 redirects"),
    ("URL redirecting to a private address", "video", lambda w: f"http://{w['hosts']['to_private']}/a.mp4",
     "is neither Label Studio's host nor in ALLOWED_MEDIA_HOSTS"),
    ("URL answering 401", "video", lambda w: f"http://{w['hosts']['status_401']}/a.mp4", "HTTP 401"),
    ("URL answering 403", "video", lambda w: f"http://{w['hosts']['status_403']}/a.mp4", "HTTP 403"),
    ("URL answering 404", "video", lambda w: f"http://{w['hosts']['status_404']}/a.mp4", "HTTP 404"),
    ("URL answering 500", "video", lambda w: f"http://{w['hosts']['status_500']}/a.mp4", "HTTP 500"),
    ("host not allowed", "video", lambda w: "http://169.254.169.254/latest/meta-data", "ALLOWED_MEDIA_HOSTS"),
    ("unsupported scheme", "video", lambda w: "gopher://127.0.0.1/a.mp4", "unsupported URL scheme gopher://"),
    ("traversal in a local-files path", "video", lambda w: "/data/local-files/?d=../../../etc/passwd", "escapes"),
    ("encoded traversal in a local-files path", "video", lambda w: "/data/local-files/?d=videos%2F..%2F..%2Fx.mp4",
     "escapes"),
    ("absolute path outside the media roots", "video", lambda w: "/etc/hostname", "outside the media roots"),
]


@pytest.fixture(scope="module")
def references(world):
    """Each good task's prediction when it is alone."""
    app, m = world["app"], world["media"]
    return {"video": _predict(app, VIDEO_CONFIG, [{"id": 1, "data": {"video": str(m["good_video"])}}])[0],
            "audio": _predict(app, AUDIO_CONFIG, [{"id": 2, "data": {"audio": str(m["good_audio"])}}])[0],
            "both": None}


@pytest.mark.parametrize("row, kind, value, expected", ROWS, ids=[r[0] for r in ROWS])
def test_each_bad_input_gets_its_answer_and_spoils_nothing(world, references, row, kind, value, expected, caplog):
    media = value(world) if callable(value) else str(world["media"][value])
    config = {"video": VIDEO_CONFIG, "audio": AUDIO_CONFIG, "both": BOTH_CONFIG}[kind]
    key = "audio" if kind == "audio" else "video"
    good_kind = "audio" if kind == "audio" else "video"
    good = {"id": 2 if good_kind == "audio" else 1,
            "data": {good_kind: str(world["media"]["good_audio" if good_kind == "audio" else "good_video"])}}
    batch_config = config if kind != "both" else VIDEO_CONFIG
    results = _predict(world["app"], batch_config if kind != "both" else config,
                       [{"id": 77, "data": {key: media}}] + ([good] if kind != "both" else []))
    if kind != "both":
        assert results[1] == references[good_kind], f"{row}: the good task of the batch changed"
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    if expected == "prediction":
        assert results[0] != [] and errors == [], (row, errors)
        assert LabelInterface(config).validate_prediction(results[0], return_errors=True) == []
    else:
        assert results[0] == [], row
        (line,) = errors
        assert line.startswith("task 77 of project 9 failed") and expected in line and "\n" not in line, line
    caplog.clear()
