"""Redis killed while the server and a worker run: nothing lost. A real redis-server, a real
`empathic worker` process and a loopback HTTP server standing in for Label Studio's prediction API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from empathic.labelstudio.server import create_app
from empathic.labelstudio.service import AnalysisService
from empathic.labelstudio.settings import BackendSettings
from redis_fixture import start_redis_server, stop_redis_server
from test_delivery import TOKEN, _free_port, _LabelStudio

CONFIG = ('<View><Audio name="audio" value="$audio"/><Labels name="voice" toName="audio" '
          'model_segmentation="vad"><Label value="Sadness"/><Label value="Amusement"/></Labels></View>')


def _wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def stack(tmp_path, voice_hub_cache, two_voices):
    redis_url, redis_process = start_redis_server(tmp_path / "redis")
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    ls_port = _free_port()
    label_studio = _LabelStudio(ls_port)
    env = {**os.environ, "REDIS_URL": redis_url, "LABEL_STUDIO_URL": f"http://127.0.0.1:{ls_port}",
           "LABEL_STUDIO_API_KEY": TOKEN, "MEDIA_ROOTS": str(Path(two_voices.path).parent), "DEVICE": "cpu",
           "MODEL_VERSION": "faults", "MEDIA_CACHE_DIR": str(tmp_path / "worker-media")}
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen([str(Path(sys.executable).with_name("empathic")), "worker"], env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    settings = BackendSettings(redis_url=redis_url, label_studio_url=f"http://127.0.0.1:{ls_port}",
                               label_studio_api_key=TOKEN, media_roots=str(Path(two_voices.path).parent),
                               device="cpu", model_version="faults", inline_budget_s=0.0,
                               media_cache_dir=tmp_path / "server-media")
    state = {"redis": redis_process, "port": port, "tmp": tmp_path, "label_studio": label_studio,
             "service": AnalysisService(settings), "worker": worker, "log": tmp_path / "worker.log"}
    yield state
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:  # never leave a worker behind, even when the test failed
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    log.close()
    stop_redis_server(state["redis"])
    label_studio.close()


def test_redis_killed_and_back_loses_nothing(stack, two_voices, caplog):
    service, label_studio = stack["service"], stack["label_studio"]
    service.cache.retry_after_s = 1.0  # after an outage the cache tries Redis again after this (10 s by default)
    task = {"id": 5, "data": {"audio": str(two_voices.path)}}
    with create_app(service).test_client() as app:
        # Redis is killed while the server and the worker run
        stop_redis_server(stack["redis"])
        response = app.post("/predict", json={"tasks": [task], "label_config": CONFIG, "project": "4.1"})
        assert response.status_code == 200 and response.get_json()["results"] == [[]]
        failure = next(r.getMessage() for r in caplog.records if r.levelname == "ERROR")
        assert failure.startswith("task 5 of project 4 failed") and "Connection" in failure  # a logged reason
        metrics = app.get("/metrics")
        assert metrics.status_code == 200 and "empathic_queue_reachable 0" in metrics.get_data(as_text=True)
        jobs = app.get("/jobs")
        assert jobs.status_code == 503 and "does not answer" in jobs.get_json()["error"]
        time.sleep(2)  # the worker notices and waits
        # Redis comes back on the same address: the queue, the worker and the cache work again
        stack["redis"] = start_redis_server(stack["tmp"] / "redis", port=stack["port"])[1]
        response = app.post("/predict", json={"tasks": [task], "label_config": CONFIG, "project": "4.1"})
        assert response.get_json()["results"] == [[]]  # deferred to the queue this time
        (job,) = app.get("/jobs?project=4").get_json()["jobs"]
        _wait_for(lambda: label_studio.stored, 180, "the worker to post the prediction: " +
                  stack["log"].read_text()[-2000:])
        assert [p["task"] for p in label_studio.stored] == [5] and label_studio.stored[0]["model_version"] == "faults"
        _wait_for(lambda: app.get(f"/jobs/{job['id']}").get_json()["state"] == "done", 30, "the job to end")
        # the worker's analysis is in Redis: the server now answers from the cache, inline
        service.settings = service.settings.model_copy(update={"inline_budget_s": 60.0})
        (prediction,) = app.post("/predict", json={"tasks": [task], "label_config": CONFIG,
                                                   "project": "4.1"}).get_json()["results"]
        assert prediction["result"] and service.counters["voice_cache_hits"] >= 1
        assert service.counters["voice_cache_misses"] == 0  # nothing was computed by the server itself
    assert stack["worker"].poll() is None  # the same worker process, through the outage
    caplog.clear()  # the failure while Redis was down was the point


def test_a_burst_worker_without_redis_says_so_in_one_line(voice_hub_cache):
    env = {**os.environ, "REDIS_URL": "redis://:secret@127.0.0.1:9/0", "DEVICE": "cpu"}
    result = subprocess.run([str(Path(sys.executable).with_name("empathic")), "worker", "--burst", "--no-preload"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    line = result.stderr.strip().splitlines()[-1]  # after the warning that no ASR model is there
    assert line.startswith("empathic: error: Redis at redis://:***@127.0.0.1:9/0 is unreachable"), result.stderr
    assert "Traceback" not in result.stderr
    assert "secret" not in result.stderr
