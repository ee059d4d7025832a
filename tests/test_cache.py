"""The analysis cache: lossless result documents, keys, and both stores against a real redis-server."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import redis

from empathic.face_analysis import FaceAnalysisOptions
from empathic.labelstudio.cache import (
    MemoryCache, RedisCache, cache_key, encode_document, make_cache, media_digest, model_identity,
)
from empathic.results import (
    Box, FaceAnalysis, FaceObservation, FrameRecord, ModelInfo, VoiceAnalysis, VoiceSegment,
)
from empathic.scoring import score_rows
from empathic.taxonomy import EMOTION_IDS, FACE_DIMENSIONS, VOICE_ATTRIBUTES
from empathic.voice_analysis import VoiceAnalysisOptions
from redis_fixture import free_port, start_redis_server, stop_redis_server

CACHE_LOGGER = "empathic.labelstudio.cache"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    url, process = start_redis_server(tmp_path_factory.mktemp("redis"))
    yield url
    stop_redis_server(process)


@pytest.fixture
def raw_redis(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


def _model(modality: str) -> ModelInfo:
    return ModelInfo(modality, "small", f"laion/Empathic-Insight-{modality}-Small", "a" * 40, "main",
                     "google/siglip2-so400m-patch16-384", "b" * 40, "fp32")


@pytest.fixture(scope="module")
def face_analysis() -> FaceAnalysis:
    rng = np.random.default_rng(7)
    dims = tuple(d.id for d in FACE_DIMENSIONS)
    rows = score_rows(rng.normal(size=(5, 40 + len(dims))), rng.normal(size=40) * 0.1, dims)
    frames = tuple(FrameRecord(i, 3 * i, i / 3 + 0.1, 640, 360) for i in range(4))  # frame 3: no face
    faces = tuple(
        FaceObservation(sample_index=s, frame_index=3 * s, time_s=s / 3 + 0.1,
                        box=Box(10.1 + j, 20.2, 1 / 3, 99.99), detection_confidence=1 / (1 + np.exp(-0.7)),
                        track_id=j + 1, emotions=emotions, dimensions=dimensions)
        for (s, j), (emotions, dimensions) in zip([(0, 0), (0, 1), (1, 0), (2, 0), (2, 1)], rows))
    media = {"path": "/data/a.mp4", "file_name": "a.mp4", "width": 640, "height": 360, "frame_count": 12,
             "duration_s": 0.4, "average_fps": 29.97, "is_image": False, "codec": "h264"}
    parameters = FaceAnalysisOptions().as_parameters() + (("a_tuple", (1, 2.5, None, ("x",))),)
    return FaceAnalysis(media, frames, faces, _model("face"), parameters)


@pytest.fixture(scope="module")
def voice_analysis() -> VoiceAnalysis:
    rng = np.random.default_rng(11)
    attributes = tuple(d.id for d in VOICE_ATTRIBUTES)
    rows = score_rows(rng.uniform(0, 4, size=(3, 40 + len(attributes))), None, attributes)
    segments = tuple(
        VoiceSegment(i, 7.5 * i, 7.5 * i + 0.1 + 0.2, speaker, emotions, attrs, text)
        for i, ((emotions, attrs), speaker, text) in enumerate(zip(
            rows, [None, "SPEAKER_00", "SPEAKER_01"], [None, "ça va ? 你好", ""])))
    parameters = VoiceAnalysisOptions(segmentation="diarization").as_parameters()
    parameters += (("diarization_revision", None),)
    media = {"path": "/data/b.wav", "file_name": "b.wav", "duration_s": 22.6, "sample_rate": 16000,
             "source_sample_rate": 44100, "channels": 2}
    return VoiceAnalysis(media, segments, _model("voice"), "diarization", parameters, shots_s=(0.0, 1 / 3))


def _through_json(document: dict) -> dict:
    return json.loads(json.dumps(document))


# --- the lossless document ---------------------------------------------------------------------

def test_face_analysis_round_trip_is_exact(face_analysis):
    document = _through_json(face_analysis.to_cache())
    restored = FaceAnalysis.from_cache(document)
    assert restored == face_analysis
    assert document["format"] == 1 and document["kind"] == "face"
    assert all(len(f["emotions"]) == len(EMOTION_IDS) for f in document["faces"])
    assert restored.parameters[-1] == ("a_tuple", (1, 2.5, None, ("x",)))
    # to_dict() rounds; the cache must not
    assert restored.faces[0].emotions[0].raw != round(restored.faces[0].emotions[0].raw, 6)


def test_voice_analysis_round_trip_is_exact(voice_analysis):
    restored = VoiceAnalysis.from_cache(_through_json(voice_analysis.to_cache()))
    assert restored == voice_analysis
    assert restored.segments[0].speaker is None and restored.segments[0].transcription is None
    assert restored.shots_s == (0.0, 1 / 3)


def test_to_dict_is_unchanged_by_the_cache_format(face_analysis):
    assert FaceAnalysis.from_cache(face_analysis.to_cache()).to_dict(3) == face_analysis.to_dict(3)


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.update(format=99), "format 99"),
    (lambda d: d.pop("format"), "format None"),
    (lambda d: d.update(kind="voice"), "kind 'voice'"),
    (lambda d: d.pop("faces"), "corrupt cached face analysis: KeyError"),
    (lambda d: d["faces"][0]["emotions"][0].__setitem__(0, "schadenfreude"), "unknown emotion ids"),
    (lambda d: d["faces"][0]["emotions"][1].pop(), "corrupt cached face analysis"),
    (lambda d: d["frames"].append("x"), "corrupt cached face analysis"),
])
def test_a_damaged_document_is_a_value_error(face_analysis, damage, message):
    document = _through_json(face_analysis.to_cache())
    damage(document)
    with pytest.raises(ValueError, match=message):
        FaceAnalysis.from_cache(document)


def test_a_parameter_json_cannot_give_back_is_refused(face_analysis):
    from dataclasses import replace

    with pytest.raises(TypeError, match="list"):
        replace(face_analysis, parameters=(("sizes", [1, 2]),)).to_cache()


def test_not_a_document_is_a_value_error():
    with pytest.raises(ValueError, match="JSON object"):
        VoiceAnalysis.from_cache([1, 2])


# --- keys --------------------------------------------------------------------------------------

_KEY_INPUTS = """
from empathic.labelstudio.cache import cache_key
key = cache_key("ab" * 32, "face",
                {"repo": "laion/x", "revision": "c" * 40, "backbone_repo": "google/s",
                 "backbone_revision": "d" * 40, "precision": "fp16"},
                (("pps", 1.0), ("detector", "haar"), ("max_faces", None), ("sizes", (1, 2))))
"""


def test_same_inputs_give_the_same_key_in_another_process():
    here = {}
    exec(_KEY_INPUTS, here)
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run([sys.executable, "-c", _KEY_INPUTS + "print(key)"], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert other == here["key"]
    assert len(other) == 64 and int(other, 16) >= 0


def test_key_changes_with_everything_that_shapes_the_result():
    model = model_identity(_model("face"))
    parameters = FaceAnalysisOptions().as_parameters()
    key = cache_key("ab" * 32, "face", model, parameters)
    assert key == cache_key("ab" * 32, "face", dict(model), tuple(parameters))
    assert key == cache_key("ab" * 32, "face", model, tuple(reversed(parameters)))  # order of options
    variants = [
        cache_key("ac" * 32, "face", model, parameters),
        cache_key("ab" * 32, "voice", model, parameters),
        cache_key("ab" * 32, "face", {**model, "revision": "e" * 40}, parameters),
        cache_key("ab" * 32, "face", {**model, "backbone_revision": "e" * 40}, parameters),
        cache_key("ab" * 32, "face", {**model, "precision": "bf16"}, parameters),
        cache_key("ab" * 32, "face", model, FaceAnalysisOptions(pps=2.0).as_parameters()),
        cache_key("ab" * 32, "face", model, parameters + (("extra", None),)),
    ]
    assert len({key, *variants}) == len(variants) + 1


def test_key_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        cache_key("ab" * 32, "gesture", {}, ())


def test_media_digest_is_the_sha256_of_the_bytes(tmp_path):
    import hashlib

    content = np.random.default_rng(0).bytes(2 * 1024 * 1024 + 17)  # spans three read chunks
    path = tmp_path / "clip.bin"
    path.write_bytes(content)
    assert media_digest(path) == hashlib.sha256(content).hexdigest()
    (tmp_path / "renamed.bin").write_bytes(content)
    assert media_digest(tmp_path / "renamed.bin") == media_digest(str(path))


# --- both stores -------------------------------------------------------------------------------

@pytest.fixture(params=["memory", "redis"])
def any_cache(request):
    if request.param == "memory":
        return MemoryCache()
    request.getfixturevalue("raw_redis")  # an empty database
    return RedisCache(request.getfixturevalue("redis_url"))


def test_results_round_trip_through_the_cache(any_cache, face_analysis, voice_analysis):
    assert any_cache.get("face-key") is None
    any_cache.put("face-key", face_analysis.to_cache())
    any_cache.put("voice-key", voice_analysis.to_cache())
    assert FaceAnalysis.from_cache(any_cache.get("face-key")) == face_analysis
    assert VoiceAnalysis.from_cache(any_cache.get("voice-key")) == voice_analysis
    stats = any_cache.stats()
    assert (stats["hits"], stats["misses"], stats["errors"]) == (2, 1, 0)


def test_a_cached_document_cannot_be_changed_through_what_get_returned(any_cache):
    any_cache.put("k", {"a": [1]})
    any_cache.get("k")["a"].append(2)
    assert any_cache.get("k") == {"a": [1]}


def test_make_cache_picks_the_store(redis_url):
    assert isinstance(make_cache(None), MemoryCache)
    assert isinstance(make_cache(redis_url), RedisCache)


# --- memory ------------------------------------------------------------------------------------

def _incompressible(n: int, seed: int) -> dict:
    return {"blob": np.random.default_rng(seed).bytes(n).hex()}


def test_memory_cache_evicts_the_least_recently_used_by_bytes():
    documents = {k: _incompressible(1000, i) for i, k in enumerate("abc")}
    size = len(encode_document(documents["a"]))
    cache = MemoryCache(max_bytes=2 * size + size // 2)  # room for two
    cache.put("a", documents["a"])
    cache.put("b", documents["b"])
    assert cache.get("a") == documents["a"]  # now b is the oldest use
    cache.put("c", documents["c"])
    assert cache.get("b") is None
    assert cache.get("a") == documents["a"] and cache.get("c") == documents["c"]
    stats = cache.stats()
    assert stats["entries"] == 2 and stats["bytes"] <= cache.max_bytes


def test_memory_cache_skips_an_entry_larger_than_itself(caplog):
    caplog.set_level(logging.INFO, logger=CACHE_LOGGER)
    cache = MemoryCache(max_bytes=100)
    cache.put("small", {"a": 1})
    cache.put("huge", _incompressible(1000, 1))
    assert cache.get("huge") is None and cache.get("small") == {"a": 1}
    assert "not cached" in caplog.text


def test_memory_cache_survives_concurrent_use():
    cache = MemoryCache(max_bytes=1_000)  # small enough to evict while threads race
    failures = []

    def work(worker: int) -> None:
        try:
            for i in range(300):
                key = f"k{(worker * 7 + i) % 50}"
                cache.put(key, {"key": key, "n": list(range(i % 20))})
                document = cache.get(key)
                assert document is None or document["key"] == key
        except Exception as error:  # noqa: BLE001 - reported by the main thread
            failures.append(error)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    stats = cache.stats()
    assert stats["hits"] + stats["misses"] == 8 * 300
    assert stats["bytes"] == sum(len(blob) for blob in cache._entries.values()) <= cache.max_bytes


# --- redis -------------------------------------------------------------------------------------

def test_redis_entries_expire(redis_url, raw_redis):
    cache = RedisCache(redis_url, ttl_s=3600)
    cache.put("k", {"a": 1})
    assert 0 < raw_redis.ttl("empathic:analysis:k") <= 3600
    assert cache.stats()["entries"] is None


def test_redis_skips_an_oversize_entry(redis_url, raw_redis, caplog):
    caplog.set_level(logging.INFO, logger=CACHE_LOGGER)
    cache = RedisCache(redis_url, max_entry_bytes=200)
    cache.put("big", _incompressible(1000, 2))
    cache.put("small", {"a": 1})
    assert not raw_redis.exists("empathic:analysis:big")
    assert cache.get("small") == {"a": 1}
    assert "exceeds the Redis entry limit" in caplog.text


@pytest.mark.parametrize("value", [b"not compressed", zlib.compress(b"{not json"),
                                   zlib.compress(b"\xff\xfe"), zlib.compress(b"[1, 2]")])
def test_a_corrupt_redis_entry_is_a_miss_and_is_deleted(redis_url, raw_redis, caplog, value):
    cache = RedisCache(redis_url, prefix="test:")
    raw_redis.set("test:bad", value)
    assert cache.get("bad") is None
    assert not raw_redis.exists("test:bad")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "test:bad" in warnings[0].getMessage()
    assert cache.stats()["misses"] == 1 and cache.stats()["errors"] == 1


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_redis_outage_is_served_uncached_and_reported_once(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=CACHE_LOGGER)
    url, process = start_redis_server(tmp_path)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    cache = RedisCache(url, retry_after_s=0)
    try:
        cache.put("k", {"a": 1})
        assert cache.get("k") == {"a": 1}
        stop_redis_server(process)

        assert cache.get("k") is None
        cache.put("k", {"a": 2})
        assert cache.get("k") is None
        warnings = _warnings(caplog)
        assert len(warnings) == 1 and "unreachable" in warnings[0] and "serving uncached" in warnings[0]

        _, process = start_redis_server(tmp_path, port=port)  # back, empty
        assert cache.get("k") is None
        cache.put("k", {"a": 3})
        assert cache.get("k") == {"a": 3}
        assert "reachable again" in caplog.text and len(_warnings(caplog)) == 1
    finally:
        stop_redis_server(process)


def test_a_down_redis_is_not_asked_again_at_once(caplog):
    cache = RedisCache(f"redis://:secret@127.0.0.1:{free_port()}/0")  # nothing listens there
    assert cache.get("k") is None
    cache.put("k", {"a": 1})
    assert cache.get("k") is None
    assert cache.stats()["errors"] == 1  # the later calls waited out the retry interval
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "secret" not in warnings[0] and ":***@127.0.0.1" in warnings[0]
