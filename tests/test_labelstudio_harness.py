"""The Label Studio harness against a REAL Label Studio 1.23.2 server (tests/labelstudio_harness.py).

One server per module. Covers: upload of an H.264/AAC clip, media download with the legacy token and
with a PAT exchanged for an access token, a VideoRectangle prediction posted and read back, strict
server-side prediction validation, Local Files storage, and the ML backend round trip (connect,
/setup, "Retrieve predictions" -> /predict) against a stub backend on loopback.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from labelstudio_harness import LabelStudioError, start_label_studio

FPS = 25
DURATION = 2.0
FRAMES = 50

CHOICES = "".join(f'<Choice value="{e}"/>' for e in ("happy", "sad", "angry", "neutral"))
LABELS = "".join(f'<Label value="{e}"/>' for e in ("happy", "sad", "angry", "neutral"))
# reference/labelstudio.md section 3.7, with a literal frameRate.
VIDEO_CONFIG = f"""<View>
  <Video name="video" value="$video" frameRate="{FPS}" sync="audio" timelineHeight="120"/>
  <Labels name="face" toName="video"><Label value="Face"/></Labels>
  <VideoRectangle name="box" toName="video"/>
  <Choices name="face_emotion" toName="video" perRegion="true">{CHOICES}</Choices>
  <TimelineLabels name="emotion_timeline" toName="video">{LABELS}</TimelineLabels>
  <Audio name="audio" value="$video" sync="video"/>
  <Labels name="voice_emotion" toName="audio">{LABELS}</Labels>
  <Choices name="voice_emotion_detail" toName="audio" perRegion="true">{CHOICES}</Choices>
</View>"""


def video_box_result(region_id: str = "face1", x: float = 10.0) -> list[dict]:
    """One face track (section 3.2: integer 1-based frames, `enabled` on every keyframe, closed
    with enabled=false) plus its per-region emotion choice."""

    def key(frame: int, enabled: bool = True) -> dict:
        return {"frame": frame, "time": frame / FPS, "x": x, "y": 20.0, "width": 30.0, "height": 40.0,
                "rotation": 0, "enabled": enabled}  # fmt: skip

    return [
        {
            "id": region_id, "from_name": "box", "to_name": "video", "type": "videorectangle", "score": 0.9,
            "value": {"framesCount": FRAMES, "duration": DURATION, "labels": ["Face"],
                      "sequence": [key(1), key(25), key(FRAMES, enabled=False)]},
        },  # fmt: skip
        {"id": region_id, "from_name": "face_emotion", "to_name": "video", "type": "choices",
         "value": {"choices": ["happy"]}},  # fmt: skip
    ]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    server = start_label_studio(tmp_path_factory)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api(label_studio):
    return label_studio.client()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is needed to make the test clip (scripts/setup.sh installs it)", pytrace=False)
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc=duration={DURATION:g}:size=320x240:rate={FPS}",
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={DURATION:g}",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def video_task(api, clip) -> tuple[int, int]:
    """(project id, task id) of the uploaded clip."""
    pid = api.create_project("video emotions", VIDEO_CONFIG)
    ids = api.upload_file(pid, clip)
    assert len(ids) == 1, ids
    return pid, ids[0]


def test_server_started(label_studio):
    print(f"label-studio up in {label_studio.startup_seconds:.1f} s "
          f"(db template used: {label_studio.used_db_template}, "
          f"template built in: {label_studio.template_build_seconds})")  # fmt: skip
    assert requests.get(f"{label_studio.url}/health", timeout=5).json() == {"status": "UP"}
    assert label_studio.log_path.is_file()


def test_upload_gives_data_upload_url(api, video_task):
    pid, tid = video_task
    tasks = api.list_tasks(pid)
    assert [t["id"] for t in tasks] == [tid]
    url = tasks[0]["data"]["video"]
    assert url.startswith(f"/data/upload/{pid}/") and url.endswith("-clip.mp4"), tasks[0]["data"]


def test_media_download_with_legacy_token(api, video_task, clip):
    _, tid = video_task
    url = api.get_task(tid)["data"]["video"]
    assert api.download(url) == clip.read_bytes()


def test_media_download_with_exchanged_pat(label_studio, api, video_task, clip):
    _, tid = video_task
    url = api.get_task(tid)["data"]["video"]
    pat = api.create_pat()
    access = api.exchange_pat(pat)
    assert access != pat
    assert api.download(url, bearer=access) == clip.read_bytes()
    # The PAT itself is a refresh token: as a Bearer it is refused (reference section 4.5).
    with pytest.raises(LabelStudioError) as e:
        api.download(url, bearer=pat)
    assert e.value.status == 401
    # And nothing is served without credentials.
    r = requests.get(label_studio.url + url, timeout=30, allow_redirects=False)
    assert r.status_code != 200


def test_prediction_round_trip(api, video_task):
    from label_studio_sdk.label_interface import LabelInterface

    pid, tid = video_task
    result = video_box_result()
    assert LabelInterface(VIDEO_CONFIG).validate_prediction({"result": result}, return_errors=True) == []
    created = api.create_prediction(tid, result, model_version="test-0", score=0.8)
    preds = api.predictions(tid)
    assert len(preds) == 1
    assert preds[0]["id"] == created["id"]
    assert preds[0]["result"] == result
    assert preds[0]["model_version"] == "test-0"
    assert preds[0]["score"] == pytest.approx(0.8)
    assert api.model_versions(pid).get("test-0") == 1


def test_strict_prediction_validation_is_on(api, video_task):
    _, tid = video_task
    bad = video_box_result(region_id="bad", x=150.0)  # x > 100 %
    with pytest.raises(LabelStudioError) as e:
        api.create_prediction(tid, bad, model_version="test-bad", score=0.1)
    assert e.value.status == 400


def test_import_update_config_and_delete_predictions(api, video_task):
    pid, tid = video_task
    url = api.get_task(tid)["data"]["video"]
    new = api.import_tasks(pid, [{"data": {"video": url}, "predictions": [
        {"model_version": "imported", "score": 0.5, "result": video_box_result("face2")}]}])  # fmt: skip
    assert len(new) == 1 and new[0] > tid
    assert [p["model_version"] for p in api.predictions(new[0])] == ["imported"]
    config = VIDEO_CONFIG.replace('<Label value="Face"/>', '<Label value="Face"/><Label value="Hand"/>')
    assert api.update_label_config(pid, config)["label_config"] == config
    api.delete_predictions(pid, [new[0]])
    assert api.predictions(new[0]) == []
    assert api.predictions(tid) != []


def test_local_files_storage(label_studio, api, clip):
    videos = label_studio.media_root / "videos"
    videos.mkdir()
    shutil.copyfile(clip, videos / "clip2.mp4")
    pid = api.create_project("local files", VIDEO_CONFIG)
    api.create_local_storage(pid, videos, regex=r".*\.mp4")
    tasks = api.list_tasks(pid)
    assert [t["data"]["video"] for t in tasks] == ["/data/local-files/?d=videos/clip2.mp4"]
    assert api.download(tasks[0]["data"]["video"]) == clip.read_bytes()


class _StubBackend(BaseHTTPRequestHandler):
    """The ML backend wire protocol (reference section 1.4), answering every task with one track."""

    calls: list[tuple[str, dict]] = []

    def _reply(self, body: dict, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.calls.append((self.path, {}))
        if self.path in ("/", "/health"):
            return self._reply({"status": "UP", "model_class": "Stub"})
        self._reply({"error": "not found"}, 404)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.calls.append((self.path, body))
        if self.path == "/setup":
            return self._reply({"model_version": "stub-1"})
        if self.path == "/predict":
            return self._reply({"results": [
                {"model_version": "stub-1", "score": 0.7, "result": video_box_result(f"t{t['id']}")}
                for t in body["tasks"]]})  # fmt: skip
        if self.path == "/webhook":
            return self._reply({"status": "Unknown event"})
        self._reply({"error": "not found"}, 404)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub_backend():
    _StubBackend.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StubBackend)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _StubBackend.calls
    finally:
        server.shutdown()
        server.server_close()


def test_ml_backend_round_trip(label_studio, api, clip, stub_backend):
    url, calls = stub_backend
    pid = api.create_project("ml backend", VIDEO_CONFIG)
    (tid,) = api.upload_file(pid, clip)
    ml = api.connect_ml_backend(pid, url, "stub")
    assert ml["readable_state"] == "Connected", ml
    assert [b["id"] for b in api.ml_backends(pid)] == [ml["id"]]
    setup = next(body for path, body in calls if path == "/setup")
    assert setup["project"].split(".")[0] == str(pid)
    assert setup["access_token"] == label_studio.token
    answer = api.retrieve_predictions(pid)
    assert answer["processed_items"] == 1, answer
    predict = [body for path, body in calls if path == "/predict"]
    assert len(predict) == 1 and [t["id"] for t in predict[0]["tasks"]] == [tid]
    assert predict[0]["tasks"][0]["data"]["video"].startswith(f"/data/upload/{pid}/")
    preds = api.predictions(tid)
    assert [(p["model_version"], p["result"]) for p in preds] == [("stub-1", video_box_result(f"t{tid}"))]
    # Same model_version: LS does not ask again.
    api.retrieve_predictions(pid, [tid])
    assert len([1 for path, _ in calls if path == "/predict"]) == 1
