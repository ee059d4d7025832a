"""The backend against a REAL Label Studio 1.23.2, a real redis-server and `empathic serve` (gunicorn).

For each shipped labeling config: create a project, upload generated media, connect the backend,
"Retrieve predictions", read them back and check them (Label Studio validates them strictly too).
Then: a label change re-predicted from the cache, and a failing task that does not spoil its batch
and is tried again on the next retrieve.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from label_studio_sdk.label_interface import LabelInterface

from labelstudio_harness import start_label_studio
from media_factory import moving_face_video
from redis_fixture import free_port, start_redis_server, stop_redis_server

CONFIGS = Path(__file__).resolve().parents[1] / "labeling_configs"
MODEL_VERSION = "emo-e2e"


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    server = start_label_studio(tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def media(tmp_path_factory, two_voices):
    folder = tmp_path_factory.mktemp("e2e-media")
    faces, _ = moving_face_video(folder / "faces_silent.mp4", seconds=3.0, fps=25, faces=2)
    talking = folder / "talking_faces.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(faces), "-i", str(two_voices.path), "-map", "0:v",
                    "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-shortest", str(talking)], check=True)
    return {"video": talking, "audio": two_voices.path}


@pytest.fixture(scope="module")
def backend(label_studio, tmp_path_factory, asr_hub_cache):
    """`empathic serve` with a personal access token, Redis, and the tiny replicas."""
    folder = tmp_path_factory.mktemp("e2e-backend")
    redis_url, redis_process = start_redis_server(folder / "redis")
    pat = label_studio.client().create_pat()
    port = free_port()
    env = {**os.environ, **label_studio.ml_backend_env(pat), "REDIS_URL": redis_url, "MODEL_VERSION": MODEL_VERSION,
           "MEDIA_CACHE_DIR": str(folder / "media"), "DEVICE": "cpu", "FACE_PPS": "2", "LOG_LEVEL": "INFO"}
    log = open(folder / "backend.log", "wb")
    process = subprocess.Popen([str(Path(sys.executable).with_name("empathic")), "serve", "--port", str(port),
                                "--threads", "2"], env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            requests.get(f"{url}/health", timeout=2).raise_for_status()
            break
        except (requests.ConnectionError, requests.Timeout):
            assert process.poll() is None and time.time() < deadline, (folder / "backend.log").read_text()[-3000:]
            time.sleep(0.5)
    yield {"url": url, "log": folder / "backend.log", "pat": pat}
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)
    log.close()
    stop_redis_server(redis_process)


def _metrics(backend) -> dict[str, float]:
    text = requests.get(f"{backend['url']}/metrics", timeout=5).text
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line and not line.startswith("#")}


def _project(label_studio, backend, config_name: str, media_paths: list[Path], how: str = "upload"):
    """A project with the shipped config, its tasks imported the ordinary ways (upload, or a Local
    Files storage synced), the task data left exactly as Label Studio made it."""
    client = label_studio.client()
    config = (CONFIGS / config_name).read_text()
    project = client.create_project(f"e2e {config_name} {how}", config)
    if how == "upload":
        task_ids = [tid for path in media_paths for tid in client.upload_file(project, path)]
    else:
        folder = label_studio.media_root / f"project-{project}"
        folder.mkdir(parents=True)
        for path in media_paths:
            shutil.copy(path, folder / Path(path).name)
        before = {t["id"] for t in client.list_tasks(project)}
        client.create_local_storage(project, folder)
        task_ids = sorted(t["id"] for t in client.list_tasks(project) if t["id"] not in before)
        assert len(task_ids) == len(media_paths)
    connected = client.connect_ml_backend(project, backend["url"], "empathic")
    assert connected.get("model_version") == MODEL_VERSION or connected.get("state") == "CO", connected
    return client, project, task_ids, config


def _check(client, config: str, task_ids: list[int]) -> list[dict]:
    predictions = []
    for tid in task_ids:
        stored = client.predictions(tid)
        assert len(stored) == 1, f"task {tid}: {len(stored)} predictions"
        prediction = stored[0]
        assert prediction["model_version"] == MODEL_VERSION and prediction["result"]
        as_sent = {"model_version": prediction["model_version"], "score": prediction["score"],
                   "result": prediction["result"]}
        assert LabelInterface(config).validate_prediction(as_sent, return_errors=True) == []
        predictions.append(prediction)
    return predictions


@pytest.mark.parametrize("how", ["upload", "local_storage"])
@pytest.mark.parametrize("config_name, kind", [
    ("video_faces.xml", "video"), ("audio_voice.xml", "audio"), ("video_face_voice.xml", "video"),
    ("basic_emotions.xml", "video")])
def test_retrieve_predictions_for_each_shipped_config(label_studio, backend, media, config_name, kind, how):
    client, project, task_ids, config = _project(label_studio, backend, config_name, [media[kind]], how)
    assert "fps" not in client.list_tasks(project)[0]["data"]  # an ordinary import fills only the media field
    client.retrieve_predictions(project)
    (prediction,) = _check(client, config, task_ids)
    types = {r["type"] for r in prediction["result"]}
    expected = {"video_faces.xml": {"videorectangle", "choices"}, "audio_voice.xml": {"labels", "choices", "taxonomy",
                "number", "textarea"}, "video_face_voice.xml": {"videorectangle", "labels", "number"},
                "basic_emotions.xml": {"videorectangle", "choices"}}[config_name]
    assert expected <= types
    if kind == "video":
        # The backend wrote the file's frame rate into the task, so the editor's clock (frameRate="$fps")
        # and the prediction's frames are the file's own 25 per second.
        (task,) = [t for t in client.list_tasks(project) if t["id"] == task_ids[0]]
        assert task["data"]["fps"] == 25.0 and set(task["data"]) == {"video", "fps"}
        tracks = [r for r in prediction["result"] if r["type"] == "videorectangle"]
        assert len(tracks) == 2
        for track in tracks:
            value = track["value"]
            assert value["framesCount"] == round(value["duration"] * 25)
            frames = [k["frame"] for k in value["sequence"]]
            assert all(isinstance(f, int) for f in frames)
            # samples every 0.5 s (FACE_PPS=2) land on frames 1, 13, 26, 38, ... of a 25 fps clock
            assert frames[:4] == [1, 13, 26, 38]
            # both faces stay in the picture to the end: boxed on the very last frame
            assert frames[-1] == value["framesCount"] and value["sequence"][-1]["enabled"] is False
    if config_name == "video_face_voice.xml":
        # one timeline per person: each face track and voice segment names its person; the fused
        # TimelineLabels (model_source="fused") is filled per person
        tracks = [r for r in prediction["result"] if r["type"] == "videorectangle"]
        assert sorted(r["meta"]["text"][0] for r in tracks) == ["PERSON_1", "PERSON_2"]
        voices = [r for r in prediction["result"] if r["type"] == "labels" and r["to_name"] == "audio"]
        assert voices and all(r["meta"]["text"][0].startswith("PERSON_") for r in voices)
        # the generated faces never move their mouths: every voice is off screen
        assert all("off screen" in r["meta"]["text"][0] for r in voices)
        fused = [r for r in prediction["result"] if r["type"] == "timelinelabels"]
        assert fused and all(r["id"].startswith("PERSON_") for r in fused)


def test_with_the_write_turned_off_frames_follow_the_editors_default(label_studio, backend, media, tmp_path):
    from empathic.labelstudio.server import create_app
    from empathic.labelstudio.service import AnalysisService
    from empathic.labelstudio.settings import BackendSettings

    client = label_studio.client()
    config = (CONFIGS / "video_faces.xml").read_text()
    project = client.create_project("e2e no fps write", config)
    first, second = client.upload_file(project, media["video"]) + client.upload_file(project, media["video"])
    settings = BackendSettings(label_studio_url=label_studio.url, label_studio_api_key=backend["pat"], device="cpu",
                               media_cache_dir=tmp_path / "media", model_version="emo-no-write", face_pps=2.0,
                               write_frame_rate=False)
    service = AnalysisService(settings)
    with create_app(service).test_client() as app:
        tasks = [client.get_task(first)]
        (prediction,) = app.post("/predict", json={"tasks": tasks, "project": f"{project}.1",
                                                   "label_config": config}).get_json()["results"]
        assert "fps" not in client.get_task(first)["data"]
        for track in [r for r in prediction["result"] if r["type"] == "videorectangle"]:
            # Label Studio's editor plays a task without the field at 24 frames per second
            assert track["value"]["framesCount"] == round(track["value"]["duration"] * 24)
            # the sample at 0.48 s (the 25 fps file's frame shown at 0.5 s) is in the editor's frame 12 at 24 fps
            assert [k["frame"] for k in track["value"]["sequence"]][:3] == [1, 12, 25]
        # With the write on, a task that vanished meanwhile cannot take the field: the prediction
        # still counts frames as the editor would (24), and the failure is counted.
        service.settings = settings.model_copy(update={"write_frame_rate": True})
        gone = client.get_task(second)
        client.delete(f"/api/tasks/{second}")
        (prediction,) = app.post("/predict", json={"tasks": [gone], "project": f"{project}.1",
                                                   "label_config": config}).get_json()["results"]
        track = next(r for r in prediction["result"] if r["type"] == "videorectangle")
        assert track["value"]["framesCount"] == round(track["value"]["duration"] * 24)
        assert "empathic_task_field_write_failures_total 1" in app.get("/metrics").get_data(as_text=True)


def test_a_label_change_is_served_from_the_cache(label_studio, backend, media):
    client, project, task_ids, config = _project(label_studio, backend, "audio_voice.xml", [media["audio"]])
    client.retrieve_predictions(project)
    before = _metrics(backend)
    changed = config.replace('<Label value="Amusement"/>', '<Label value="Happy" predicted_values="amusement, elation"/>')
    client.update_label_config(project, changed)
    client.delete_predictions(project)
    client.retrieve_predictions(project)
    after = _metrics(backend)
    (prediction,) = _check(client, changed, task_ids)
    assert after["empathic_voice_cache_hits_total"] == before["empathic_voice_cache_hits_total"] + 1
    assert after["empathic_voice_cache_misses_total"] == before["empathic_voice_cache_misses_total"]


def test_a_failing_task_spoils_nothing_and_is_tried_again(label_studio, backend, media):
    client, project, task_ids, config = _project(label_studio, backend, "audio_voice.xml", [media["audio"]])
    (broken,) = client.import_tasks(project, [{"audio": "/data/upload/999/missing.wav"}])
    before = _metrics(backend)
    client.retrieve_predictions(project)
    _check(client, config, task_ids)
    assert client.predictions(broken) == []
    middle = _metrics(backend)
    assert middle["empathic_failed_tasks_total"] == before["empathic_failed_tasks_total"] + 1
    client.retrieve_predictions(project)  # only the task without a current prediction is asked for again
    after = _metrics(backend)
    assert after["empathic_failed_tasks_total"] == middle["empathic_failed_tasks_total"] + 1
    assert after["empathic_predictions_total"] == middle["empathic_predictions_total"]
    assert "task %d " % broken in backend["log"].read_text() and "missing.wav" in backend["log"].read_text()


def test_a_401_from_label_studio_names_the_url_and_the_key(label_studio, backend, media, tmp_path):
    from empathic.labelstudio.media_fetch import LabelStudioAccess, MediaFetcher, MediaFetchError

    client = label_studio.client()
    project = client.create_project("e2e auth", (CONFIGS / "audio_voice.xml").read_text())
    (task_id,) = client.upload_file(project, media["audio"])
    upload = client.get_task(task_id)["data"]["audio"]
    fetcher = MediaFetcher(LabelStudioAccess(label_studio.url, "not-a-valid-token"), tmp_path)
    with pytest.raises(MediaFetchError, match=r"401.*LABEL_STUDIO_API_KEY") as error:
        fetcher.fetch(upload, task_id=task_id)
    assert upload.rsplit("/", 1)[-1] in str(error.value)
    # Label Studio allows one personal access token per user: the backend's
    good = MediaFetcher(LabelStudioAccess(label_studio.url, backend["pat"]), tmp_path / "ok")
    assert good.fetch(upload, task_id=task_id).read_bytes() == Path(media["audio"]).read_bytes()


def test_prelabel_predicts_each_task_once_and_a_second_run_does_nothing(label_studio, backend, media, tmp_path):
    from empathic.audio import decode_audio
    from media_factory import write_wav

    client = label_studio.client()
    project = client.create_project("e2e prelabel", (CONFIGS / "audio_voice.xml").read_text())
    samples = decode_audio(media["audio"]).samples
    uploads = []
    for seconds in (6, 8, 10, 12):  # four different recordings
        path = write_wav(tmp_path / f"take_{seconds}s.wav", samples[: seconds * 16000])
        (task_id,) = client.upload_file(project, path)
        uploads.append(client.get_task(task_id)["data"]["audio"])
    client.import_tasks(project, [{"audio": uploads[i % 4]} for i in range(16)])
    env = {**os.environ, "MODEL_VERSION": "emo-prelabel", "DEVICE": "cpu", "MEDIA_CACHE_DIR": str(tmp_path / "media")}
    env.pop("REDIS_URL", None)
    command = [str(Path(sys.executable).with_name("empathic")), "prelabel", "--url", label_studio.url,
               "--api-key", backend["pat"], "--project", str(project), "-q"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.strip() == ("20 task(s) selected: 20 predicted (16 from the cache), 0 already had a "
                                    "prediction, 0 failed")
    tasks = client.list_tasks(project)
    assert len(tasks) == 20
    for task in tasks:
        (prediction,) = client.predictions(task["id"])
        assert prediction["model_version"] == "emo-prelabel" and prediction["result"]
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0
    assert second.stdout.strip() == ("20 task(s) selected: 0 predicted (0 from the cache), 20 already had a "
                                     "prediction, 0 failed")
    assert all(len(client.predictions(t["id"])) == 1 for t in tasks)
    wrong = subprocess.run([*command[:-3], "--tasks", "999999", "--project", str(project)], env=env,
                           capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 1 and "999999" in wrong.stderr and "Traceback" not in wrong.stderr


def test_without_redis_a_thread_runs_the_jobs_and_posts_the_prediction(label_studio, backend, media, tmp_path):
    from empathic.labelstudio.server import create_app
    from empathic.labelstudio.service import AnalysisService
    from empathic.labelstudio.settings import BackendSettings

    client = label_studio.client()
    config = (CONFIGS / "audio_voice.xml").read_text()
    project = client.create_project("e2e local jobs", config)
    (task_id,) = client.upload_file(project, media["audio"])
    settings = BackendSettings(label_studio_url=label_studio.url, label_studio_api_key=backend["pat"], device="cpu",
                               media_cache_dir=tmp_path / "media", model_version="emo-local-jobs", inline_budget_s=0)
    service = AnalysisService(settings)
    with create_app(service).test_client() as app:
        task = client.get_task(task_id)
        response = app.post("/predict", json={"tasks": [task], "project": f"{project}.1", "label_config": config})
        assert response.get_json()["results"] == [[]]  # deferred: nothing inline
        deadline = time.time() + 120
        while not client.predictions(task_id):
            assert time.time() < deadline, app.get("/jobs").get_json()
            time.sleep(0.5)
        (prediction,) = client.predictions(task_id)
        assert prediction["model_version"] == "emo-local-jobs"
        (job,) = app.get(f"/jobs?project={project}").get_json()["jobs"]
        deadline = time.time() + 30
        while job["state"] != "done":
            assert time.time() < deadline, job
            time.sleep(0.2)
            job = app.get(f"/jobs/{job['id']}").get_json()
        assert job["delivered"] is True and job["task"] == task_id and job["progress"]["step"] in ("segments", "transcripts")
        assert app.get("/jobs/nope").status_code == 404
        assert 'empathic_jobs{state="done"} 1' in app.get("/metrics").get_data(as_text=True)
