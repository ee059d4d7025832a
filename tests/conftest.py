"""Test set-up: an offline Hugging Face cache holding tiny replicas of the real repositories.

The cache location and offline mode must be set before huggingface_hub is first imported (it
reads them once), so this happens at import time of this file.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

_CACHE_ROOT = Path(tempfile.mkdtemp(prefix="empathic-test-hub-"))
os.environ["HF_HUB_CACHE"] = str(_CACHE_ROOT / "hub")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["PYANNOTE_METRICS_ENABLED"] = "false"
os.environ["TRANSFORMERS_VERBOSITY"] = "error"
# Stacked voice heads (models/head_stack.py) go with the replicas, never into the user's cache.
os.environ["EMPATHIC_HEAD_CACHE"] = os.environ["HEAD_CACHE_DIR"] = str(_CACHE_ROOT / "heads")
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE_ROOT, ignore_errors=True)


@pytest.fixture(scope="session")
def hub_cache() -> Path:
    """The offline hub cache with tiny face replicas (built once per session)."""
    from replicas import build_face_replicas

    cache = Path(os.environ["HF_HUB_CACHE"])
    if not (cache / ".built").exists():
        build_face_replicas(cache)
        (cache / ".built").write_text("ok")
    return cache


@pytest.fixture(scope="session")
def voice_hub_cache(hub_cache) -> Path:
    """The same offline cache, plus tiny voice replicas (both sizes, both Whisper encoders)."""
    from replicas import build_voice_replicas

    if not (hub_cache / ".voice-built").exists():
        build_voice_replicas(hub_cache)
        (hub_cache / ".voice-built").write_text("ok")
    return hub_cache


@pytest.fixture(scope="session")
def asr_hub_cache(voice_hub_cache) -> Path:
    """Plus a tiny multilingual Whisper ASR with a real tokenizer, as openai/whisper-small."""
    from asr_replica import build_tiny_whisper_asr

    build_tiny_whisper_asr(voice_hub_cache)
    return voice_hub_cache


@pytest.fixture(scope="session")
def voice_model_small(voice_hub_cache, cpu_runtime):
    from empathic.hub import WeightSources
    from empathic.models.voice import VoiceEmotionModel

    return VoiceEmotionModel.load("small", WeightSources(), cpu_runtime)


@pytest.fixture(scope="session")
def two_voices(media_dir):
    """A 16 kHz WAV of two espeak-ng voices at known times."""
    from media_factory import two_voice_track

    return two_voice_track(media_dir / "speech")


@pytest.fixture(scope="session")
def two_voice_video(two_voices, media_dir) -> Path:
    from media_factory import mux_video_with_audio

    return mux_video_with_audio(media_dir / "two_voices.mp4", two_voices.path, two_voices.duration_s)


@pytest.fixture(scope="session")
def cpu_runtime():
    from empathic.models.runtime import make_runtime

    return make_runtime("cpu", "fp32", batch_size=4)


@pytest.fixture(scope="session")
def face_model_small(hub_cache, cpu_runtime):
    from empathic.hub import WeightSources
    from empathic.models.face import FaceEmotionModel

    return FaceEmotionModel.load("small", WeightSources(), cpu_runtime)


@pytest.fixture(scope="session")
def face_model_large(hub_cache, cpu_runtime):
    from empathic.hub import WeightSources
    from empathic.models.face import FaceEmotionModel

    return FaceEmotionModel.load("large", WeightSources(), cpu_runtime)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(autouse=True)
def no_error_logs(caplog):
    """A test that logged an ERROR failed, whatever it asserted."""
    yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert not errors, f"ERROR logged: {[r.getMessage() for r in errors]}"
