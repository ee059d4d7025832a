"""Diarization segments from a tiny random pyannote pipeline on two synthetic voices.

The replica's weights are random, so these tests check the contract (loading offline, segment
invariants, options reaching pyannote, errors), never which voice gets which label.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from empathic.audio import AudioClip, decode_audio
from empathic.hub import MissingWeightsError, WeightSources
from empathic.registry import RepoRef
from empathic.segments import Segment
from empathic.segments.diarization import (
    DiarizationOptions,
    DiarizationSegmenter,
    _merge_close,
    _one_at_a_time,
)

SPEAKER_LABEL = re.compile(r"^SPEAKER_\d\d$")


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory) -> Path:
    from pyannote_replica import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("pyannote") / "tiny-diarization")


@pytest.fixture(scope="module")
def two_voices(tmp_path_factory) -> AudioClip:
    """About 10 s: silence, a low US voice, silence, a high British voice, silence."""
    folder = tmp_path_factory.mktemp("voices")
    voices = {
        "a": ["-v", "en-us+m3", "Hello there, this is the first speaker talking about the weather today."],
        "b": ["-v", "en-gb+f3", "-p", "70", "And I am the second speaker, answering with a higher voice."],
    }
    silence = np.zeros(8000, np.float32)
    parts = [silence]
    for name, args in voices.items():
        wav = folder / f"{name}.wav"
        subprocess.run(["espeak-ng", *args[:-1], "-w", str(wav), args[-1]], check=True)
        parts += [decode_audio(wav).samples, silence]
    return AudioClip(np.concatenate(parts), 16000, "two-voices")


@pytest.fixture(scope="module")
def two_speaker_run(pipeline_dir, two_voices) -> tuple[list[Segment], list[dict]]:
    """The segments for num_speakers=2, and the speaker counts pyannote's pipeline was given."""
    from pyannote.audio.pipelines import SpeakerDiarization

    calls = []
    original = SpeakerDiarization.apply

    def recording_apply(self, file, **kwargs):
        calls.append({k: v for k, v in kwargs.items() if k.endswith("speakers")})
        return original(self, file, **kwargs)

    segmenter = DiarizationSegmenter(DiarizationOptions(pipeline=str(pipeline_dir), num_speakers=2))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SpeakerDiarization, "apply", recording_apply)
        segments = segmenter.segment(two_voices)
    return segments, calls


def check_invariants(segments: list[Segment], audio: AudioClip, options: DiarizationOptions) -> None:
    assert segments == sorted(segments)
    for segment in segments:
        assert 0.0 <= segment.start_s < segment.end_s <= audio.duration_s
        assert SPEAKER_LABEL.match(segment.speaker), segment.speaker
        assert segment.duration_s >= options.min_duration_s - 1e-9
        assert segment.duration_s <= options.max_duration_s + 1e-9
    for before, after in zip(segments, segments[1:]):
        assert before.end_s <= after.start_s + 1e-9, (before, after)


def test_tiny_pipeline_loads_offline_and_segments_two_voices(two_speaker_run, two_voices):
    segments, calls = two_speaker_run
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert segments, "the replica found no speech at all"
    check_invariants(segments, two_voices, DiarizationOptions(num_speakers=2))
    assert calls == [{"num_speakers": 2, "min_speakers": None, "max_speakers": None}]
    assert 1 <= len({s.speaker for s in segments}) <= 2


def test_pipeline_from_the_offline_hub_cache_records_its_commit(pipeline_dir, two_voices, tmp_path):
    from replicas import write_hub_repo

    files = {str(p.relative_to(pipeline_dir)): p.read_bytes() for p in pipeline_dir.rglob("*") if p.is_file()}
    snapshot = write_hub_repo(tmp_path / "hub", RepoRef(DiarizationOptions().pipeline, "main"), files)
    segmenter = DiarizationSegmenter(DiarizationOptions(), WeightSources(cache_dir=tmp_path / "hub"))
    check_invariants(segmenter.segment(two_voices), two_voices, DiarizationOptions())
    assert segmenter.info() == {"repo": "pyannote/speaker-diarization-community-1",
                                "revision": snapshot.name, "requested_revision": "main"}


def test_short_limits_split_and_drop(pipeline_dir, two_voices):
    options = DiarizationOptions(pipeline=str(pipeline_dir), min_speakers=1, max_speakers=2,
                                 min_duration_s=1.0, max_duration_s=2.0)
    segments = DiarizationSegmenter(options).segment(two_voices)
    assert segments
    check_invariants(segments, two_voices, options)


def test_too_short_audio_gives_no_segments_without_loading(tmp_path):
    segmenter = DiarizationSegmenter(DiarizationOptions(pipeline=str(tmp_path)))
    assert segmenter.segment(AudioClip(np.zeros(1600, np.float32))) == []
    assert segmenter.segment(AudioClip(np.zeros(0, np.float32))) == []


def test_uncached_hub_pipeline_is_missing_weights(two_voices):
    options = DiarizationOptions(pipeline="pyannote/speaker-diarization-3.1")
    with pytest.raises(MissingWeightsError) as caught:
        DiarizationSegmenter(options).segment(two_voices)
    message = str(caught.value)
    assert "\n" not in message
    assert "pyannote/speaker-diarization-3.1" in message and "HF_HUB_OFFLINE" in message
    assert "HF_TOKEN" in message and "conditions" in message


def test_broken_pipeline_folder_is_value_error(tmp_path, two_voices):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"cannot load the diarization pipeline .*empty: FileNotFoundError"):
        DiarizationSegmenter(DiarizationOptions(pipeline=str(empty))).segment(two_voices)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.yaml").write_text("pipeline:\n  name: no.such.Pipeline\n")
    with pytest.raises(ValueError, match=r"cannot load the diarization pipeline .*bad") as caught:
        DiarizationSegmenter(DiarizationOptions(pipeline=str(bad))).segment(two_voices)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"num_speakers": 0}, "num_speakers must be a whole number >= 1"),
    ({"max_speakers": 1.5}, "max_speakers must be a whole number >= 1"),
    ({"min_speakers": True}, "min_speakers must be a whole number >= 1"),
    ({"min_speakers": 3, "max_speakers": 2}, r"min_speakers \(3\) is larger than max_speakers \(2\)"),
    ({"num_speakers": 4, "max_speakers": 3}, r"num_speakers \(4\) contradicts"),
    ({"num_speakers": 1, "min_speakers": 2}, r"num_speakers \(1\) contradicts"),
    ({"min_duration_s": -1}, "minimum segment duration must be >= 0"),
    ({"max_duration_s": 31}, r"maximum segment duration must be in \(0, 30\]"),
    ({"max_duration_s": 0}, r"maximum segment duration must be in \(0, 30\]"),
    ({"min_duration_s": 5, "max_duration_s": 4}, "minimum segment duration .* is larger than the maximum"),
    ({"pipeline": "./no/such/folder"}, "existing folder holding config.yaml or a hub repository id"),
    ({"pipeline": ""}, "existing folder holding config.yaml or a hub repository id"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message) as caught:
        DiarizationOptions(**kwargs)
    assert "\n" not in str(caught.value)


def test_consistent_speaker_counts_are_accepted():
    DiarizationOptions(num_speakers=2, min_speakers=1, max_speakers=3)
    DiarizationOptions(min_speakers=2, max_speakers=2)


def test_overlapping_turns_become_exclusive():
    turns = [(0.0, 4.0, "A"), (1.0, 2.0, "B"), (3.5, 6.0, "C")]
    assert _one_at_a_time(turns) == [(0.0, 1.0, "A"), (1.0, 2.0, "B"), (2.0, 3.5, "A"), (3.5, 6.0, "C")]


def test_close_turns_of_one_speaker_merge_across_flicker():
    turns = [(0.0, 1.0, "A"), (1.0, 1.02, "B"), (1.05, 2.0, "A"), (2.6, 3.0, "A"), (3.0, 4.0, "B")]
    assert _merge_close(turns, 0.25) == [(0.0, 2.0, "A"), (2.6, 3.0, "A"), (3.0, 4.0, "B")]


def test_progress_of_each_pyannote_step_reaches_the_hook(pipeline_dir, two_voices):
    calls = []
    DiarizationSegmenter(DiarizationOptions(pipeline=str(pipeline_dir)),
                         hook=lambda *call: calls.append(call)).segment(two_voices)
    steps = {step for step, _, _ in calls}
    assert "diarization segmentation" in steps
    last = {step: (done, total) for step, done, total in calls}
    assert all(done == total and total > 0 for done, total in last.values())
