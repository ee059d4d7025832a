"""``empathic live`` on real streams on loopback: ffmpeg sends a generated talking-faces clip at its
own rate (``-re``) as MPEG-TS, over HTTP (``-listen 1``) or UDP; the session's events and documents are
checked against ``empathic annotate`` on the same clip with the same settings. Then backpressure with a
slowed model, and a stream that goes silent."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from media_factory import talking_faces_video

EMPATHIC = Path(sys.executable).with_name("empathic")
COMMON = ("--device", "cpu", "--precision", "fp32", "--batch-size", "4", "--top-k", "40")


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(*args, timeout=300):
    return subprocess.run([str(EMPATHIC), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=os.environ.copy())


def wait_for_udp_listener(port: int, process: subprocess.Popen, limit_s: float = 120) -> None:
    """Until a socket is bound to 127.0.0.1:port (read from /proc/net/udp, as `ss -ul` does)."""
    wanted = f"0100007F:{port:04X}"
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        with open("/proc/net/udp") as table:
            if any(line.split()[1] == wanted for line in table.readlines()[1:]):
                return
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on udp port {port}")


def ffmpeg_sender(clip: Path, url: str, listen: bool, extra=()) -> subprocess.Popen:
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-i", str(clip), "-c", "copy", *extra,
               "-f", "mpegts", *(["-listen", "1"] if listen else []), url]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return talking_faces_video(tmp_path_factory.mktemp("live")).path


@pytest.fixture(scope="module")
def http_session(clip, voice_hub_cache, tmp_path_factory):
    """One live session over HTTP, and annotate on the same file with the same settings."""
    out = tmp_path_factory.mktemp("live_http")
    port = free_port()
    sender = ffmpeg_sender(clip, f"http://127.0.0.1:{port}/session.ts", listen=True)
    try:
        time.sleep(0.5)  # ffmpeg is listening once it has read the input's header
        started = time.perf_counter()
        live = run("live", f"http://127.0.0.1:{port}/session.ts", "--face", "--voice", "--pps", "2", "--window", "5", "--hop", "2",
                   "-o", out / "live", "-f", "coco", "-f", "webvtt", "-f", "json", "--name", clip.stem, *COMMON)
        live_wall = time.perf_counter() - started
    finally:
        sender.wait(timeout=60)
    offline = run("annotate", clip, "--face", "--voice", "--pps", "2", "--segmentation", "sliding", "--window", "5",
                  "--hop", "2", "-o", out / "file", "-f", "coco", "-f", "webvtt", "-f", "json", "-q", *COMMON)
    assert offline.returncode == 0, offline.stderr
    return {"live": live, "wall": live_wall, "out": out}


def events_of(result):
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def load(path: Path):
    return json.loads(path.read_text())


def test_events_come_in_media_time_order_with_stable_tracks(http_session, clip):
    live = http_session["live"]
    assert live.returncode == 0, live.stderr
    events = events_of(live)
    assert events[0]["type"] == "start" and events[0]["video"] and events[0]["audio"]
    assert events[-1]["type"] == "summary" and events[-1]["ended"] == "end of stream"
    faces = [e for e in events if e["type"] == "face"]
    voices = [e for e in events if e["type"] == "voice"]
    times = [e["media_time_s"] for e in faces]
    assert times == sorted(times) and len(times) >= 20  # 2 per second of a clip of about 14 s
    assert [e["window_index"] for e in voices] == sorted(e["window_index"] for e in voices)
    # The two people sit left and right for the whole clip: each keeps one track id throughout.
    sides = {}
    for event in faces:
        assert len(event["faces"]) == 2, event
        for face in event["faces"]:
            side = "left" if face["box"][0] < 480 else "right"
            sides.setdefault(side, set()).add(face["track_id"])
            assert len(face["top"]) == 40 and face["top"][0]["share"] >= face["top"][1]["share"]
            assert 0 <= face["quality"] <= 1 and isinstance(face["flags"], list)
        assert event["latency_s"] >= 0
    assert len(sides["left"]) == 1 and len(sides["right"]) == 1 and sides["left"] != sides["right"]
    # Each window is cut to its speech: the first voice starts at 1.0 s, so the first window (0-2 s)
    # is scored from there (less silero's 0.1 s of padding).
    assert voices[0]["window"] == [0.0, 2.0] and voices[0]["segment"][0] == pytest.approx(0.9, abs=0.1)
    spoken = [v for v in voices if v["speech"]]
    assert len(spoken) >= 5
    assert all(len(v["top"]) == 40 and v["window"][0] <= v["segment"][0] < v["segment"][1] <= v["window"][1]
               and 0 <= v["quality"] <= 1 and "audio_quality" not in v for v in spoken)
    summary = events[-1]
    assert summary["face"]["offered"] == summary["face"]["processed"] + summary["face"]["skipped"]
    assert summary["face"]["latency_p95_s"] is not None and "latency p50" in live.stderr
    # It kept pace with the stream: the session lasted about the clip's own length.
    assert summary["media_s"] == pytest.approx(14, abs=3) and http_session["wall"] < summary["media_s"] + 15


def test_the_session_documents_equal_annotate_on_the_same_clip(http_session, clip):
    live = events_of(http_session["live"])[-1]
    assert live["face"]["skipped"] == 0 and live["voice"]["skipped"] == 0, live  # else samples would be missing
    out = http_session["out"]
    live_coco, file_coco = load(out / "live" / f"{clip.stem}.coco.json"), load(out / "file" / f"{clip.stem}.coco.json")
    frames = [(i["id"], i["frame_number"], i["timestamp"]) for i in file_coco["images"]]
    assert [(i["id"], i["frame_number"], i["timestamp"]) for i in live_coco["images"]] == frames
    assert len(live_coco["annotations"]) == len(file_coco["annotations"]) > 0
    for a, b in zip(live_coco["annotations"], file_coco["annotations"]):
        assert a["image_id"] == b["image_id"] and a["track_id"] == b["track_id"]
        assert a["bbox"] == b["bbox"]
        shares_a = {k: v["score"] for k, v in a["attributes"]["emotions"].items()}
        shares_b = {k: v["score"] for k, v in b["attributes"]["emotions"].items()}
        assert shares_a.keys() == shares_b.keys()
        assert max(abs(shares_a[k] - shares_b[k]) for k in shares_a) < 1e-4
    live_voice, file_voice = load(out / "live" / f"{clip.stem}.voice.json"), load(out / "file" / f"{clip.stem}.voice.json")
    assert live_voice["parameters"] == file_voice["parameters"]
    assert len(live_voice["segments"]) == len(file_voice["segments"]) > 2
    for a, b in zip(live_voice["segments"], file_voice["segments"]):
        assert a["start_time"] == pytest.approx(b["start_time"], abs=0.02)
        assert a["end_time"] == pytest.approx(b["end_time"], abs=0.02)
        raw_a = np.array([a["emotions"][k]["raw"] for k in sorted(a["emotions"])])
        raw_b = np.array([b["emotions"][k]["raw"] for k in sorted(b["emotions"])])
        assert np.abs(raw_a - raw_b).max() < 1e-3
    cues_live = [line for line in (out / "live" / f"{clip.stem}.vtt").read_text().splitlines() if "-->" in line]
    cues_file = [line for line in (out / "file" / f"{clip.stem}.vtt").read_text().splitlines() if "-->" in line]
    assert cues_live == cues_file


def test_a_udp_stream_that_goes_silent_ends_with_a_summary_not_a_hang(clip, voice_hub_cache, tmp_path):
    port = free_port(socket.SOCK_DGRAM)
    receiver = subprocess.Popen(
        [str(EMPATHIC), "live", f"udp://127.0.0.1:{port}", "--face", "--pps", "1", "--open-timeout", "20",
         "--read-timeout", "2", "-o", tmp_path, *COMMON], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_udp_listener(port, receiver)  # after the models have loaded: UDP keeps nothing for a late reader
    sender = ffmpeg_sender(clip, f"udp://127.0.0.1:{port}?pkt_size=1316", listen=False, extra=("-t", "4"))
    sender.wait(timeout=60)
    stdout, stderr = receiver.communicate(timeout=60)
    assert receiver.returncode == 1, stderr  # dropped, not ended: the documents are still written
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["ended"] == "stream dropped: no data for 2 s", summary
    assert summary["face"]["processed"] >= 2
    assert "stream dropped: no data for 2 s" in stderr
    coco = load(next(tmp_path.glob("*.coco.json")))
    assert len(coco["images"]) == summary["face"]["processed"]


def test_a_source_that_cannot_be_opened_is_named_in_one_line(voice_hub_cache, tmp_path):
    port = free_port()  # nothing listens there
    result = run("live", f"http://127.0.0.1:{port}/none.ts", "--open-timeout", "3", *COMMON)
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"empathic: error: http://127.0.0.1:{port}/none.ts: cannot open")
    assert len(result.stderr.strip().splitlines()) == 1
    missing = run("live", str(tmp_path / "nope.mp4"), *COMMON)
    assert missing.stderr.strip() == f"empathic: error: {tmp_path / 'nope.mp4'}: no such file or device"
    (tmp_path / "clip.mp4").write_bytes(b"")
    not_live = run("live", str(tmp_path / "clip.mp4"), *COMMON)
    assert "is a file; add --realtime" in not_live.stderr


class SlowFaceModel:
    """The tiny face model, made slower than the stream: every embedding takes ``delay_s`` more."""

    def __init__(self, model, delay_s: float):
        self._model, self.delay_s = model, delay_s
        self.runtime, self.info = model.runtime, model.info

    def preprocess(self, crops):
        return self._model.preprocess(crops)

    def embed(self, pixels):
        time.sleep(self.delay_s)
        return self._model.embed(pixels)

    def score(self, embeddings):
        return self._model.score(embeddings)


def test_a_slow_model_skips_samples_and_keeps_latency_bounded(clip, face_model_small):
    from empathic.face_analysis import FaceAnalysisOptions
    from empathic.faces.detect import make_detector
    from empathic.live.session import LiveOptions, LiveSession
    from empathic.live.source import LiveSource

    delay = 0.6
    options = LiveOptions(faces=FaceAnalysisOptions(pps=5.0), voices=None)
    events = []
    session = LiveSession(options, SlowFaceModel(face_model_small, delay), None, make_detector("haar"),
                          on_event=events.append)
    source = LiveSource(str(clip), video=True, audio=False, realtime=True)
    stop_at = threading.Timer(6.0, source.stop.set)  # a user's Ctrl-C after 6 s
    stop_at.start()
    try:
        result = session.run(source)
    finally:
        stop_at.cancel()
        source.close()
    face = result.summary.face
    assert result.summary.ended == "stopped"
    assert face.skipped > 0 and face.offered == face.processed + face.skipped
    # Five samples a second against at most 1/0.6: most are skipped, none waits for long. A queue
    # would have made the last one wait about (30 - 10) x 0.6 s = 12 s.
    assert face.processed < face.offered / 2
    # The latency bound: the hold of one frame (0.04 s), at most one sample waiting behind the one in
    # the model, and each of them delay plus detection and the tiny model (well under 0.6 s here).
    assert max(face.latencies_s) < 2 * delay + 1.2
    assert [e["sample_index"] for e in events if e["type"] == "face"] == sorted(
        f.sample_index for f in result.face.frames)
    assert result.face.parameters[-1] == ("live_skipped_samples", face.skipped)


def test_ctrl_c_ends_the_session_cleanly_and_writes_its_documents(clip, voice_hub_cache, tmp_path):
    import signal

    events = tmp_path / "events.jsonl"
    # Voice-Plus this time: its four audio-quality experts come with every scored window.
    process = subprocess.Popen([str(EMPATHIC), "live", str(clip), "--realtime", "--face", "--voice", "--pps", "2",
                                "--hop", "2", "--model-size", "plus", "--events", str(events), "-o", tmp_path,
                                *COMMON],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (events.exists() and '"type":"face"' in events.read_text()):  # the session is under way
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1]
        time.sleep(0.2)
    time.sleep(2.5)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert stdout == ""  # the events went to the file
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    summary = lines[-1]
    assert summary["type"] == "summary" and summary["ended"] == "stopped"
    assert 2 < summary["media_s"] < 12  # stopped part-way through the 14 s clip
    coco = load(tmp_path / f"{clip.stem}.coco.json")
    assert len(coco["images"]) == summary["face"]["processed"] >= 4
    assert "-->" in (tmp_path / f"{clip.stem}.vtt").read_text()
    spoken = [e for e in lines if e["type"] == "voice" and e["speech"]]
    assert spoken and all(set(e["audio_quality"]) == {"overall_quality", "speech_quality", "background_quality",
                                                      "content_enjoyment"} for e in spoken)
    assert all(0 <= e["quality"] <= 1 for e in spoken)
