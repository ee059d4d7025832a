"""The ML-backend protocol through Flask's test client, with tiny models and real media files."""

import base64
import json
import time
from pathlib import Path

import pytest
from label_studio_sdk.label_interface import LabelInterface

from empathic.labelstudio.cache import MemoryCache
from empathic.labelstudio.server import create_app
from empathic.labelstudio.service import AnalysisService
from empathic.labelstudio.settings import BackendSettings, SettingsError
from media_factory import moving_face_video, mux_video_with_audio

CONFIGS = Path(__file__).resolve().parents[1] / "labeling_configs"


@pytest.fixture(scope="module")
def media(media_dir, two_voices):
    clip, _ = moving_face_video(media_dir / "server_faces.mp4", seconds=2.0, fps=25, faces=1)
    return {"faces": clip, "speech": two_voices.path,
            "both": mux_video_with_audio(media_dir / "server_both.mp4", two_voices.path, two_voices.duration_s)}


def _service(tmp_path, **overrides):
    # MEDIA_ROOTS: the session's temporary folders, where the tests make their media
    settings = BackendSettings(device="cpu", precision="fp32", media_cache_dir=tmp_path / "media",
                               model_version="emo-test", face_pps=2.0, media_roots=str(tmp_path.parent),
                               **overrides)
    return AnalysisService(settings, cache=MemoryCache())


@pytest.fixture
def client(tmp_path, asr_hub_cache):
    service = _service(tmp_path)
    app = create_app(service)
    app.config["TESTING"] = True
    with app.test_client() as test_client:
        test_client.service = service
        yield test_client


def _predict(client, config, tasks):
    response = client.post("/predict", json={"tasks": tasks, "project": "3.1700000000", "label_config": config,
                                            "params": {"login": None, "password": None, "context": None}})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["results"]


def test_health_and_setup_are_fast_and_load_no_model(client):
    started = time.perf_counter()
    assert client.get("/health").get_json()["status"] == "UP"
    response = client.post("/setup", json={"project": "3.1700000000", "schema": (CONFIGS / "video_faces.xml").read_text(),
                                           "hostname": "http://localhost:8080", "access_token": "x",
                                           "extra_params": {"a": 1}})
    assert response.status_code == 200 and response.get_json() == {"model_version": "emo-test"}
    assert time.perf_counter() - started < 3.0
    assert client.service._models == {}  # nothing loaded


def test_setup_refuses_a_config_without_emotions(client):
    response = client.post("/setup", json={"project": "1.1", "schema":
                           '<View><Audio name="a" value="$a"/><Labels name="l" toName="a"><Label value="Dog"/></Labels></View>'})
    assert response.status_code == 400 and "'Dog'" in response.get_json()["error"]


def test_predict_video_and_audio_tasks_in_order_with_valid_predictions(client, media):
    video_config = (CONFIGS / "video_faces.xml").read_text()
    results = _predict(client, video_config, [{"id": 1, "data": {"video": str(media["faces"]), "fps": 25}}])
    assert len(results) == 1 and results[0]["model_version"] == "emo-test"
    assert LabelInterface(video_config).validate_prediction(results[0], return_errors=True) == []
    assert any(r["type"] == "videorectangle" for r in results[0]["result"])
    audio_config = (CONFIGS / "audio_voice.xml").read_text()
    tasks = [{"id": 7, "data": {"audio": str(media["speech"])}}, {"id": 8, "data": {"audio": str(media["speech"])}}]
    results = _predict(client, audio_config, tasks)
    assert len(results) == 2 and results[0] == results[1]
    assert LabelInterface(audio_config).validate_prediction(results[0], return_errors=True) == []
    assert {r["type"] for r in results[0]["result"]} == {"labels", "choices", "taxonomy", "number", "textarea"}
    transcripts = [r["value"]["text"][0] for r in results[0]["result"] if r["type"] == "textarea"]
    assert len(transcripts) == 2 and all(transcripts)  # the config's TextArea asks for them


def test_one_bad_task_never_spoils_the_batch(client, media, tmp_path, caplog):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEjunk")
    config = (CONFIGS / "audio_voice.xml").read_text()
    notes = tmp_path / "notes.txt"
    notes.write_text("not a recording")
    tasks = [{"id": 1, "data": {"audio": str(media["speech"])}},
             {"id": 2, "data": {"audio": str(corrupt)}},
             {"id": 3, "data": {"text": "no audio field"}},
             {"id": 4, "data": {"audio": "/data/upload/1/missing.wav"}},
             {"id": 5, "data": {"audio": str(notes)}},
             {"id": 6, "data": {"audio": "http://127.0.0.1:1/unreachable.wav"}},
             {"id": 7, "data": {"audio": str(media["speech"])}},
             {"id": 8, "data": {"audio": "/etc/passwd"}}]
    results = _predict(client, config, tasks)
    assert [bool(r) for r in results] == [True, False, False, False, False, False, True, False]
    assert results[1] == results[2] == results[3] == results[4] == results[5] == results[7] == []  # retried next time
    failures = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(failures) == 6
    assert "task 2 " in failures[0] and "corrupt.wav" in failures[0]
    assert "task 3 " in failures[1] and "'audio'" in failures[1]
    assert "task 4 " in failures[2] and "LABEL_STUDIO_URL" in failures[2]
    assert "task 5 " in failures[3] and "notes.txt" in failures[3]
    assert "task 6 " in failures[4] and "unreachable.wav" in failures[4] and "ALLOWED_MEDIA_HOSTS" in failures[4]
    assert "task 8 " in failures[5] and "/etc/passwd is outside the media roots" in failures[5]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'empathic_media_refused_total{reason="host"} 1' in metrics
    assert 'empathic_media_refused_total{reason="local_path"} 1' in metrics
    caplog.clear()  # these errors were the point of the test


def _metric(app_client, name: str) -> float:
    text = app_client.get("/metrics").get_data(as_text=True)
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith(f"empathic_{name} ")))


def test_a_missing_asr_model_leaves_out_only_the_transcripts(tmp_path, media, asr_hub_cache, caplog):
    service = _service(tmp_path, asr_model="openai/whisper-absent")
    config = (CONFIGS / "audio_voice.xml").read_text()
    with create_app(service).test_client() as app_client:
        tasks = [{"id": 1, "data": {"audio": str(media["speech"])}}, {"id": 2, "data": {"audio": str(media["speech"])}}]
        results = _predict(app_client, config, tasks)
        assert all(r and r["result"] for r in results)
        assert LabelInterface(config).validate_prediction(results[0], return_errors=True) == []
        # emotions, families and dimensions all there; the transcript stays empty
        assert {r["type"] for r in results[0]["result"]} == {"labels", "choices", "taxonomy", "number"}
        warnings = [r.getMessage() for r in caplog.records if "without transcripts" in r.getMessage()]
        assert len(warnings) == 1, warnings  # once per process, not once per task
        assert "openai/whisper-absent" in warnings[0] and "`empathic models download --asr openai/whisper-absent`" \
            in warnings[0]
        assert _metric(app_client, "tasks_without_transcripts_total") == 2
        assert _metric(app_client, "failed_tasks_total") == 0


def test_a_missing_diarization_pipeline_falls_back_to_vad_segments(tmp_path, media, voice_hub_cache, caplog):
    service = _service(tmp_path, diarization_pipeline="pyannote/absent-pipeline")
    config = ('<View><Audio name="audio" value="$audio"/><Labels name="emotion" toName="audio" '
              'model_segmentation="diarization"><Label value="Sadness"/><Label value="Amusement"/></Labels></View>')
    with create_app(service).test_client() as app_client:
        (result,) = _predict(app_client, config, [{"id": 1, "data": {"audio": str(media["speech"])}}])
        segments = [r for r in result["result"] if r["type"] == "labels"]
        assert len(segments) == 2  # the two voices, found by VAD
        assert "predicting without speaker turns" in caplog.text and "pyannote/absent-pipeline" in caplog.text
        assert _metric(app_client, "tasks_without_speakers_total") == 1


def test_a_task_names_every_missing_model_at_once(tmp_path, media, caplog):
    from empathic.hub import WeightSources

    service = _service(tmp_path)
    service.sources = WeightSources(cache_dir=tmp_path / "empty-hub", offline=True)
    config = (CONFIGS / "video_face_voice.xml").read_text()
    with create_app(service).test_client() as app_client:
        assert _predict(app_client, config, [{"id": 5, "data": {"video": str(media["both"])}}]) == [[]]
    (failure,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    for repo in ("laion/Empathic-Insight-Face-Small", "google/siglip2-so400m-patch16-384",
                 "laion/Empathic-Insight-Voice-Small", "mkrausio/EmoWhisper-AnS-Small-v0.1",
                 "`empathic models download --face small --voice small`"):
        assert repo in failure
    caplog.clear()  # the error was the point of the test


def test_a_label_change_is_served_from_the_cache(client, media):
    config = (CONFIGS / "video_face_voice.xml").read_text()
    task = [{"id": 1, "data": {"video": str(media["both"])}}]
    started = time.perf_counter()
    first = _predict(client, config, task)[0]
    miss_s = time.perf_counter() - started
    changed = config.replace('<Label value="Positive"/><Label value="Negative"/>\n  </TimelineLabels>',
                             '<Label value="Happy"/><Label value="Sad"/>\n  </TimelineLabels>')
    assert changed != config
    started = time.perf_counter()
    second = _predict(client, changed, task)[0]
    hit_s = time.perf_counter() - started
    counters = client.service.counters
    assert counters["face_cache_misses"] == 1 and counters["face_cache_hits"] == 1
    assert counters["voice_cache_misses"] == 1 and counters["voice_cache_hits"] == 1
    assert [r for r in first["result"] if r["type"] == "videorectangle"] == \
           [r for r in second["result"] if r["type"] == "videorectangle"]
    assert hit_s < miss_s
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "empathic_face_cache_hits_total 1" in metrics and "empathic_predictions_total 2" in metrics


def test_webhook_retrains_nothing_and_versions(client):
    assert client.post("/webhook", json={"action": "TASK_CREATED"}).get_json() == {"status": "Unknown event"}
    response = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 3}})
    assert response.status_code == 201 and response.get_json()["status"] == "ok"
    assert client.get("/versions").get_json()["versions"] == ["emo-test"]


def test_basic_auth_guards_every_route(tmp_path, voice_hub_cache):
    app = create_app(_service(tmp_path, basic_auth_user="ls", basic_auth_pass="secret"))
    with app.test_client() as client:
        assert client.get("/health").status_code == 401
        good = base64.b64encode(b"ls:secret").decode()
        assert client.get("/health", headers={"Authorization": f"Basic {good}"}).status_code == 200
        bad = base64.b64encode(b"ls:nope").decode()
        assert client.post("/setup", json={}, headers={"Authorization": f"Basic {bad}"}).status_code == 401


def test_settings_come_from_the_environment_with_one_line_errors():
    settings = BackendSettings.from_env({"LABEL_STUDIO_URL": "http://ls:8080/", "REDIS_URL": "redis://r:6379/0",
                                         "FACE_PPS": "2.5", "LABEL_STUDIO_ACCESS_TOKEN": "tok"})
    assert settings.label_studio_url == "http://ls:8080" and settings.face_pps == 2.5
    assert settings.label_studio_api_key == "tok" and "tok" not in repr(settings)
    with pytest.raises(SettingsError, match="FACE_PPS"):
        BackendSettings.from_env({"FACE_PPS": "-1"})
    with pytest.raises(SettingsError, match="LABEL_STUDIO_URL"):
        BackendSettings.from_env({"LABEL_STUDIO_URL": "ls:8080"})
    assert BackendSettings().haar_search == "local"
    assert BackendSettings.from_env({"HAAR_SEARCH": "exhaustive"}).haar_search == "exhaustive"
    with pytest.raises(SettingsError, match="HAAR_SEARCH"):
        BackendSettings.from_env({"HAAR_SEARCH": "fast"})
    assert json.loads(BackendSettings().model_dump_json())["model_version"].startswith("empathic-")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    from redis_fixture import start_redis_server, stop_redis_server

    url, process = start_redis_server(tmp_path_factory.mktemp("redis"))
    yield url
    stop_redis_server(process)


def test_the_redis_cache_serves_another_process_and_a_down_redis_only_costs_speed(tmp_path, media, redis_url,
                                                                                asr_hub_cache, caplog):
    from empathic.labelstudio.cache import RedisCache

    config = (CONFIGS / "audio_voice.xml").read_text()
    task = [{"id": 1, "data": {"audio": str(media["speech"])}}]
    roots = str(tmp_path.parent)
    first = AnalysisService(BackendSettings(device="cpu", media_cache_dir=tmp_path / "m1", model_version="v",
                                            media_roots=roots), cache=RedisCache(redis_url))
    second = AnalysisService(BackendSettings(device="cpu", media_cache_dir=tmp_path / "m2", model_version="v",
                                             media_roots=roots), cache=RedisCache(redis_url))
    with create_app(first).test_client() as client:
        computed = _predict(client, config, task)
    with create_app(second).test_client() as client:
        cached = _predict(client, config, task)
    assert computed == cached
    assert first.counters["voice_cache_misses"] == 1 and second.counters["voice_cache_hits"] == 1
    assert second._models == {}  # served without loading a model
    down = AnalysisService(BackendSettings(device="cpu", media_cache_dir=tmp_path / "m3", model_version="v",
                                           media_roots=roots),
                           cache=RedisCache("redis://127.0.0.1:1/0"))
    with create_app(down).test_client() as client:
        assert _predict(client, config, task) == computed
    assert "unreachable" in caplog.text and "serving uncached" in caplog.text


def test_empathic_serve_answers_under_gunicorn(tmp_path, voice_hub_cache):
    import os
    import socket
    import subprocess
    import sys

    import requests

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    executable = Path(sys.executable).with_name("empathic")
    env = {**os.environ, "MODEL_VERSION": "emo-serve", "MEDIA_CACHE_DIR": str(tmp_path / "media"),
           "MEDIA_ROOTS": str(tmp_path.parent)}
    process = subprocess.Popen([str(executable), "serve", "--port", str(port), "--threads", "2"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except (requests.ConnectionError, requests.Timeout):  # the worker is still importing
                assert process.poll() is None and time.time() < deadline, process.stdout.read().decode()[-2000:]
                time.sleep(0.3)
        assert response.json()["model_version"] == "emo-serve"
        started = time.perf_counter()
        requests.get(f"http://127.0.0.1:{port}/health", timeout=1)
        assert time.perf_counter() - started < 1.0
        started = time.perf_counter()
        setup = requests.post(f"http://127.0.0.1:{port}/setup", timeout=3,
                              json={"project": "1.1", "schema": (CONFIGS / "audio_voice.xml").read_text()})
        assert setup.json() == {"model_version": "emo-serve"} and time.perf_counter() - started < 3
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


GOLDEN = Path(__file__).parent / "golden" / "audio_voice_prediction.json"


def _close(expected, got, path="prediction"):
    if isinstance(expected, dict):
        assert isinstance(got, dict) and sorted(expected) == sorted(got), f"{path}: keys differ"
        for key in expected:
            _close(expected[key], got[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(expected) == len(got), f"{path}: lengths differ"
        for i, (a, b) in enumerate(zip(expected, got)):
            _close(a, b, f"{path}[{i}]")
    elif isinstance(expected, float) and not isinstance(got, str):
        assert got == pytest.approx(expected, rel=1e-3, abs=1e-5), f"{path}: {got} != {expected}"
    else:
        assert got == expected, f"{path}: {got!r} != {expected!r}"


def test_audio_prediction_matches_the_golden_json(client, media):
    """A regression guard on the whole wire format (ids, types, spans, labels, numbers) for a fixed
    input. Regenerate with EMPATHIC_UPDATE_GOLDEN=1 after an intended change, and review the diff."""
    import os

    config = (CONFIGS / "audio_voice.xml").read_text()
    (prediction,) = _predict(client, config, [{"id": 1, "data": {"audio": str(media["speech"])}}])
    prediction = {k: v for k, v in prediction.items()}
    for region in prediction["result"]:
        if region["type"] == "textarea":
            region["value"]["text"] = ["<random tiny ASR text>"]  # a random model's words are not the point
    if os.environ.get("EMPATHIC_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(prediction, indent=1, ensure_ascii=False) + "\n")
    _close(json.loads(GOLDEN.read_text()), prediction)


def test_the_model_class_is_built_the_way_upstreams_server_builds_it(monkeypatch, media, tmp_path, asr_hub_cache):
    from empathic.labelstudio import backend as backend_module

    monkeypatch.setattr(backend_module, "_default_service", None)
    monkeypatch.setenv("DEVICE", "cpu")
    monkeypatch.setenv("MODEL_VERSION", "upstream-shape")
    monkeypatch.setenv("MEDIA_CACHE_DIR", str(tmp_path / "media"))
    monkeypatch.setenv("MEDIA_ROOTS", str(tmp_path.parent))
    model = backend_module.EmpathicBackend(project_id="5", label_config=(CONFIGS / "basic_emotions.xml").read_text())
    (prediction,) = model.predict([{"id": 1, "data": {"video": str(media["faces"])}}], context=None)
    assert model.model_version == prediction["model_version"] == "upstream-shape"
    assert model.fit("START_TRAINING", {})["status"] == "this backend retrains nothing"


def test_video_face_voice_names_who_speaks_and_fusion_settings_need_no_new_decoding(tmp_path, voice_hub_cache):
    from media_factory import talking_faces_video

    clip = talking_faces_video(tmp_path / "talking")
    service = _service(tmp_path)
    config = (CONFIGS / "video_face_voice.xml").read_text()
    task = {"id": 11, "data": {"video": str(clip.path), "fps": 25}}
    with create_app(service).test_client() as app_client:
        (first,) = _predict(app_client, config, [task])
        assert LabelInterface(config).validate_prediction(first, return_errors=True) == []
        tracks = {r["id"]: r for r in first["result"] if r["type"] == "videorectangle"}
        left = min(tracks.values(), key=lambda r: r["value"]["sequence"][0]["x"])
        right = max(tracks.values(), key=lambda r: r["value"]["sequence"][0]["x"])
        voices = sorted((r for r in first["result"] if r["type"] == "labels" and r["to_name"] == "audio"),
                        key=lambda r: r["value"]["start"])
        # fixed 5 s windows: voice A (1-4 s, the left face), voice B (5.5-8.3 s, the right face), voice C
        # (9.8-12.5 s, nobody on screen)
        assert [r["meta"]["text"][0] for r in voices] == [left["meta"]["text"][0], right["meta"]["text"][0],
                                                         "PERSON_3 (off screen)"]
        fused = [r for r in first["result"] if r["type"] == "timelinelabels"]
        assert {r["meta"]["text"][0] for r in fused} <= {"PERSON_1", "PERSON_2", "PERSON_3 (off screen)"}
        assert _metric(app_client, "evidence_cache_misses_total") == 1
        # another fusion grid: linking and fusion run again from the cached evidence and analyses
        service.settings = service.settings.model_copy(update={"fusion_grid_s": 0.5})
        (second,) = _predict(app_client, config, [task])
        assert _metric(app_client, "evidence_cache_misses_total") == 1
        assert _metric(app_client, "evidence_cache_hits_total") == 1
        assert _metric(app_client, "face_cache_misses_total") == 1
        assert _metric(app_client, "voice_cache_misses_total") == 1
        assert LabelInterface(config).validate_prediction(second, return_errors=True) == []


def test_media_longer_or_larger_than_the_limits_is_refused_with_the_value_and_the_limit(tmp_path, media, caplog,
                                                                                     voice_hub_cache):
    service = _service(tmp_path, max_media_duration_s=5, max_frame_pixels=320 * 240)
    with create_app(service).test_client() as app_client:
        audio = (CONFIGS / "audio_voice.xml").read_text()
        video = (CONFIGS / "basic_emotions.xml").read_text()
        assert _predict(app_client, audio, [{"id": 21, "data": {"audio": str(media["speech"])}}]) == [[]]
        assert _predict(app_client, video, [{"id": 22, "data": {"video": str(media["faces"])}}]) == [[]]
        metrics = app_client.get("/metrics").get_data(as_text=True)
    failures = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "task 21: the media lasts 12 s, more than MAX_MEDIA_DURATION_S=5" in failures[0]
    assert "task 22: the video's frames are 1280x720 = 921600 pixels, more than MAX_FRAME_PIXELS=76800" in failures[1]
    assert 'reason="too_long"} 1' in metrics and 'reason="frame_too_large"} 1' in metrics
    assert service._models == {}  # refused before any model was loaded
    caplog.clear()  # the errors were the point of the test
