"""Transcription through the real loading path: a tiny random openai/whisper-small in the offline hub
cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from empathic.hub import MissingWeightsError, WeightSources
from empathic.models.asr import DEFAULT_ASR_MODEL, Transcriber, parse_asr_repo
from empathic.models.runtime import Runtime
from empathic.registry import RepoRef

SR = 16000


@pytest.fixture(scope="module")
def whisper_snapshot() -> Path:
    from asr_replica import build_tiny_whisper_asr

    return build_tiny_whisper_asr(Path(os.environ["HF_HUB_CACHE"]))


@pytest.fixture(scope="module")
def transcriber(whisper_snapshot, cpu_runtime) -> Transcriber:
    return Transcriber.load(DEFAULT_ASR_MODEL, WeightSources(), cpu_runtime)


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    noise = (0.1 * np.random.default_rng(0).standard_normal(SR)).astype(np.float32)  # 1 s
    sine = (0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * SR) / SR)).astype(np.float32)  # 3 s
    return [noise, sine]


def test_loads_the_hub_replica_and_records_the_commit(transcriber, whisper_snapshot):
    assert transcriber.info.repo == "openai/whisper-small"
    assert transcriber.info.revision == whisper_snapshot.name  # the snapshot's commit hash
    assert transcriber.info.requested_revision == DEFAULT_ASR_MODEL.revision  # the pin
    assert transcriber.info.revision == "973afd24965f72e36ca33b3055d56a652f456b4d"
    assert transcriber.info.language is None  # detected per clip
    assert transcriber.model.dtype == torch.float32 and not transcriber.model.training


def test_batch_is_deterministic_and_equals_each_clip_alone(transcriber, clips):
    texts = transcriber.transcribe(clips)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert all(t and t == t.strip() and "<|" not in t for t in texts)  # no prompt/control/timestamp tokens
    assert texts[0] != texts[1]  # the replica's output depends on the audio
    assert transcriber.transcribe(clips) == texts
    # Every clip is padded to the same 30 s window and decoded greedily in its own row, so batching
    # changes nothing (a different BLAS blocking for another batch size could in principle flip a
    # near-tie between two tokens; with these random weights there is none).
    assert [transcriber.transcribe([clip])[0] for clip in clips] == texts


def test_more_clips_than_the_batch_size_keep_their_order(transcriber, clips, whisper_snapshot):
    one_at_a_time = Transcriber.load("openai/whisper-small", WeightSources(),
                                     Runtime(torch.device("cpu"), torch.float32, batch_size=1))
    three = [clips[1], clips[0], clips[1]]
    assert one_at_a_time.transcribe(three) == transcriber.transcribe(three)
    assert transcriber.transcribe([]) == []


def test_language_is_detected_per_clip(transcriber, clips):
    config = transcriber.model.generation_config
    sequences = transcriber._generate(transcriber._features(clips))
    language_ids = set(config.lang_to_id.values())
    # <|startoftranscript|> <|lang|> <|transcribe|> <|notimestamps|>: greedy, no timestamps
    assert sequences[:, 0].tolist() == [config.decoder_start_token_id] * 2
    assert all(int(t) in language_ids for t in sequences[:, 1])
    assert sequences[:, 2].tolist() == [config.task_to_id["transcribe"]] * 2
    assert sequences[:, 3].tolist() == [config.no_timestamps_token_id] * 2
    # The replica detects a different language for each clip: detection is per clip, and the legacy
    # forced_decoder_ids of config.json (which force <|en|>) are not applied.
    assert sequences[0, 1] != sequences[1, 1]
    assert transcriber.model.config.forced_decoder_ids[0][1] == config.lang_to_id["<|en|>"]


def test_a_given_language_is_used(whisper_snapshot, cpu_runtime, clips):
    english = Transcriber.load("openai/whisper-small", WeightSources(), cpu_runtime, language="en")
    assert english.info.language == "en"
    texts = english.transcribe(clips)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    sequences = english._generate(english._features(clips))
    en_id = english.model.generation_config.lang_to_id["<|en|>"]
    assert sequences[:, 1].tolist() == [en_id, en_id]
    assert Transcriber.load("openai/whisper-small", WeightSources(), cpu_runtime,
                            language="English").info.language == "en"
    with pytest.raises(ValueError, match="klingon"):
        Transcriber.load("openai/whisper-small", WeightSources(), cpu_runtime, language="klingon")


def test_clip_length_limit(transcriber):
    assert len(transcriber.transcribe([np.zeros(30 * SR, np.float32)])) == 1  # exactly one window
    with pytest.raises(ValueError, match="30 s"):
        transcriber.transcribe([np.zeros(SR, np.float32), np.zeros(30 * SR + 1, np.float32)])
    with pytest.raises(ValueError, match="mono"):
        transcriber.transcribe([np.zeros((2, SR), np.float32)])


def test_a_pinned_revision_resolves_to_that_snapshot(whisper_snapshot, cpu_runtime):
    pinned = Transcriber.load(f"openai/whisper-small@{whisper_snapshot.name}", WeightSources(), cpu_runtime)
    assert pinned.info.revision == pinned.info.requested_revision == whisper_snapshot.name


def test_missing_weights_name_the_repo_and_the_fetch_command(tmp_path, cpu_runtime):
    with pytest.raises(MissingWeightsError) as error:
        Transcriber.load(DEFAULT_ASR_MODEL, WeightSources(cache_dir=tmp_path, offline=True), cpu_runtime)
    assert "openai/whisper-small" in str(error.value)
    assert "`empathic models download --asr`" in str(error.value)  # the default model needs no name


def test_repo_strings():
    # the default model without a revision takes its pin; any other repository follows main
    assert parse_asr_repo("openai/whisper-small") == DEFAULT_ASR_MODEL
    assert parse_asr_repo("openai/whisper-small@main") == RepoRef("openai/whisper-small", "main")
    assert parse_asr_repo("org/other") == RepoRef("org/other", "main")
    assert parse_asr_repo("org/name@v2") == RepoRef("org/name", "v2")
    for bad in ("whisper-small", "a/b/c", "org/name@", "/name"):
        with pytest.raises(ValueError):
            parse_asr_repo(bad)
