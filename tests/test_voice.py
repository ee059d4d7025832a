"""The voice model and analysis against LAION's reference computation, and the voice exports."""

import html
import json

import numpy as np
import pytest
import torch
import webvtt

from empathic.audio import AudioClip, decode_audio
from empathic.exports.rttm import WriteRTTM
from empathic.exports.voice_json import WriteVoiceJSON
from empathic.exports.webvtt import WriteVTT
from empathic.hub import MissingWeightsError, WeightSources
from empathic.models.voice import VoiceEmotionModel
from empathic.registry import VOICE_MODELS
from empathic.results import VoiceAnalysis, VoiceSegment
from empathic.scoring import softmax
from empathic.segments import Segment
from empathic.segments.fixed import WindowOptions
from empathic.taxonomy import EMOTIONS, VOICE_ATTRIBUTES, file_key_of
from empathic.voice_analysis import VoiceAnalysisOptions, analyze_voice
from reference import reference_voice_scores


def _snapshot(repo_id):
    from huggingface_hub import snapshot_download

    return snapshot_download(repo_id, local_files_only=True)


def test_fixed_window_scores_equal_laions_reference(two_voices, voice_model_small):
    from pathlib import Path

    analysis = analyze_voice(two_voices.path, voice_model_small)
    audio = decode_audio(two_voices.path)
    spec = VOICE_MODELS["small"]
    encoder_dir = Path(_snapshot(spec.backbone.repo_id))
    heads_dir = Path(_snapshot(spec.repo.repo_id))
    references = []
    for segment in analysis.segments:
        reference = reference_voice_scores(audio.window(segment.start_s, segment.end_s), encoder_dir, heads_dir)
        references.append(reference)
        raw_by_id = {e.emotion_id: e.raw for e in segment.emotions}
        expected_raw = np.array([reference[e.voice_key] for e in EMOTIONS])
        got_raw = np.array([raw_by_id[e.id] for e in EMOTIONS])
        np.testing.assert_allclose(got_raw, expected_raw, atol=1e-4, rtol=1e-5)
        share_by_id = {e.emotion_id: e.share for e in segment.emotions}
        np.testing.assert_allclose([share_by_id[e.id] for e in EMOTIONS], softmax(expected_raw), atol=1e-5)
        attributes = dict(segment.attributes)
        np.testing.assert_allclose([attributes[d.id] for d in VOICE_ATTRIBUTES],
                                   [reference[d.file_key] for d in VOICE_ATTRIBUTES], atol=1e-4, rtol=1e-5)
    # The comparison can fail: different windows give scores further apart than the tolerance.
    first, second = references[0], references[1]
    assert max(abs(first[k] - second[k]) for k in first) > 1e-3


def test_each_segment_has_40_ranked_emotions_and_15_attributes(two_voice_video, voice_model_small):
    analysis = analyze_voice(two_voice_video, voice_model_small)
    assert [(s.start_s, s.end_s) for s in analysis.segments][:2] == [(0, 5), (5, 10)]
    for segment in analysis.segments:
        assert len(segment.emotions) == 40 and [e.rank for e in segment.emotions] == list(range(1, 41))
        assert sum(e.share for e in segment.emotions) == pytest.approx(1.0, abs=1e-6)
        assert all(e.intensity == e.raw for e in segment.emotions)  # no neutral statistics for voice
        assert [a for a, _ in segment.attributes] == [d.id for d in VOICE_ATTRIBUTES]
    document = analysis.to_dict()
    assert document["model_info"]["segmentation_mode"] == "fixed"
    assert document["model_info"]["repo"] == "laion/Empathic-Insight-Voice-Small"
    segment = document["segments"][0]
    assert set(segment) == {"segment_index", "start_time", "end_time", "speaker_id", "emotions", "attributes",
                            "transcription"}
    assert set(next(iter(segment["emotions"].values()))) == {"score", "rank", "raw"}
    assert document["attribute_scales"]["vulnerable_detached"]["high_meaning"] == "very emotionally detached"
    assert document["attribute_scales"]["warm_cold"]["high_meaning"] == "very warm"


def test_batching_does_not_change_scores(two_voices, voice_model_small):
    audio = decode_audio(two_voices.path)
    clips = [audio.window(0, 5), audio.window(5, 10), audio.window(10, 12)]
    together = voice_model_small.raw_scores(clips)
    alone = np.concatenate([voice_model_small.raw_scores([c]) for c in clips])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_a_40_s_recording_in_one_window_is_scored_as_two_20_s_segments(voice_model_small):
    rng = np.random.default_rng(0)
    audio = AudioClip((rng.standard_normal(40 * 16000) * 0.05).astype(np.float32), source="noise.wav")
    options = VoiceAnalysisOptions(windows=WindowOptions(pps=1 / 40))
    analysis = analyze_voice("noise.wav", voice_model_small, options, audio=audio)
    assert [(s.start_s, s.end_s) for s in analysis.segments] == [(0, 20), (20, 40)]
    with pytest.raises(ValueError, match="exceeds the 30 s Whisper window"):
        voice_model_small.raw_scores([audio.samples])


def test_progress_hook_counts_segments(two_voices, voice_model_small):
    calls = []
    analyze_voice(two_voices.path, voice_model_small, hook=lambda *a: calls.append(a))
    assert calls[0] == ("segments", 0, 3) and calls[-1] == ("segments", 3, 3)


def test_same_input_same_document(two_voices, voice_model_small):
    first = WriteVoiceJSON().render(analyze_voice(two_voices.path, voice_model_small))
    second = WriteVoiceJSON().render(analyze_voice(two_voices.path, voice_model_small))
    assert first == second


def test_large_heads_and_the_other_encoder(two_voices, voice_hub_cache, cpu_runtime, voice_model_small):
    large = VoiceEmotionModel.load("large", WeightSources(), cpu_runtime)
    bud_e = VoiceEmotionModel.load("small", WeightSources(), cpu_runtime, encoder="bud-e-whisper")
    clip = [decode_audio(two_voices.path).window(0, 5)]
    assert large.raw_scores(clip).shape == (1, 55)
    assert large.info.repo == "laion/Empathic-Insight-Voice-Large"
    assert bud_e.info.backbone_repo == "laion/BUD-E-Whisper"
    assert not np.allclose(bud_e.raw_scores(clip), voice_model_small.raw_scores(clip))


def test_missing_voice_weights_name_the_repos_and_the_fetch_command(tmp_path, cpu_runtime):
    empty = WeightSources(cache_dir=tmp_path, offline=True)
    with pytest.raises(MissingWeightsError) as error:
        VoiceEmotionModel.load("small", empty, cpu_runtime)
    message = str(error.value)
    assert "laion/Empathic-Insight-Voice-Small" in message and "mkrausio/EmoWhisper-AnS-Small-v0.1" in message
    assert "empathic models download --voice small" in message


def _analysis_with_speakers(voice_model_small, two_voices) -> VoiceAnalysis:
    audio = decode_audio(two_voices.path)
    plan = [Segment(1.0, 3.0, "SPEAKER_00"), Segment(3.0, 4.9, "SPEAKER_00"), Segment(6.9, 10.8, "SPEAKER_01")]
    rows = voice_model_small.score(voice_model_small.raw_scores([audio.window(s.start_s, s.end_s) for s in plan]))
    segments = tuple(VoiceSegment(i, s.start_s, s.end_s, s.speaker, emotions, attributes,
                                  "hello <there> & you" if i == 0 else None)
                     for i, (s, (emotions, attributes)) in enumerate(zip(plan, rows)))
    return VoiceAnalysis({"file_name": "two voices.wav", "duration_s": audio.duration_s}, segments,
                         voice_model_small.info, "diarization", (("segmentation", "diarization"),))


def test_webvtt_parses_with_speakers_times_and_top_emotions(two_voices, voice_model_small):
    analysis = _analysis_with_speakers(voice_model_small, two_voices)
    captions = list(webvtt.from_string(WriteVTT(top_k=3).render(analysis)))
    assert len(captions) == 3
    for caption, segment in zip(captions, analysis.segments):
        assert caption.start_time.in_milliseconds() == round(segment.start_s * 1000)
        assert caption.end_time.in_milliseconds() == round(segment.end_s * 1000)
        assert caption.voice == segment.speaker
        emotions_line = html.unescape(caption.text.splitlines()[-1])
        expected = ", ".join(f"{e.name}({e.share:.3f})" for e in segment.top(3))
        assert emotions_line == f"EMOTIONS: {expected}"
    assert html.unescape(captions[0].text.splitlines()[0]) == "hello <there> & you"


def test_rttm_joins_split_turns(two_voices, voice_model_small):
    lines = WriteRTTM().render(_analysis_with_speakers(voice_model_small, two_voices)).splitlines()
    assert lines == ["SPEAKER two_voices 1 1.000 3.900 <NA> <NA> SPEAKER_00 <NA> <NA>",
                     "SPEAKER two_voices 1 6.900 3.900 <NA> <NA> SPEAKER_01 <NA> <NA>"]


def test_rttm_refuses_segments_without_speakers(two_voices, voice_model_small):
    with pytest.raises(ValueError, match="diarization"):
        WriteRTTM().render(analyze_voice(two_voices.path, voice_model_small))


def test_voice_json_keeps_all_40_emotions(two_voices, voice_model_small):
    document = json.loads(WriteVoiceJSON().render(analyze_voice(two_voices.path, voice_model_small)))
    assert all(len(s["emotions"]) == 40 and len(s["attributes"]) == 15 for s in document["segments"])
    head_keys = {file_key_of(n) for n in VOICE_MODELS["small"].head_file_names()}
    assert len(head_keys) == 55


def test_int8_heads_score_close_to_fp32_and_say_so(two_voices, voice_hub_cache, cpu_runtime, voice_model_small):
    quantised = VoiceEmotionModel.load("small", WeightSources(), cpu_runtime, head_precision="int8")
    clips = [decode_audio(two_voices.path).window(start, start + 5) for start in (0, 5)]
    dense, small = voice_model_small.raw_scores(clips), quantised.raw_scores(clips)
    spread = dense[:, :40].std(axis=1).mean()
    assert np.abs(small - dense).max() < 0.05 * spread + 1e-3
    assert quantised.heads.first_weight.dtype == torch.int8
    assert quantised.info.precision == "fp32, heads int8" and voice_model_small.info.precision == "fp32"
    with pytest.raises(ValueError, match="unknown head precision 'int4'"):
        VoiceEmotionModel.load("small", WeightSources(), cpu_runtime, head_precision="int4")


def test_stacked_heads_are_written_once_then_mapped(two_voices, voice_hub_cache, cpu_runtime, voice_model_small,
                                                    tmp_path, caplog):
    import logging

    clips = [decode_audio(two_voices.path).window(0, 5)]
    with caplog.at_level(logging.INFO, logger="empathic.models.head_stack"):
        first = VoiceEmotionModel.load("small", WeightSources(), cpu_runtime, head_precision="int8",
                                       head_cache=tmp_path)
        written = list(tmp_path.glob("*.safetensors"))
        second = VoiceEmotionModel.load("small", WeightSources(), cpu_runtime, head_precision="int8",
                                        head_cache=tmp_path)
    assert len(written) == 1 and "wrote stacked heads" in caplog.text and "heads mapped from" in caplog.text
    np.testing.assert_array_equal(second.raw_scores(clips), first.raw_scores(clips))
    # another precision is another stack; a damaged stack is read past, not trusted
    VoiceEmotionModel.load("small", WeightSources(), cpu_runtime, head_cache=tmp_path)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
    written[0].write_bytes(b"not a safetensors file")
    third = VoiceEmotionModel.load("small", WeightSources(), cpu_runtime, head_precision="int8", head_cache=tmp_path)
    np.testing.assert_array_equal(third.raw_scores(clips), first.raw_scores(clips))


def test_only_the_attribute_heads_asked_for_are_loaded(two_voices, voice_hub_cache, cpu_runtime, voice_model_small):
    clips = [decode_audio(two_voices.path).window(0, 5)]
    some = VoiceEmotionModel.load("small", WeightSources(), cpu_runtime, attributes=("arousal", "valence"))
    none = VoiceEmotionModel.load("small", WeightSources(), cpu_runtime, attributes=())
    full = voice_model_small.raw_scores(clips)
    assert none.heads.num_heads == 40 and some.heads.num_heads == 42
    np.testing.assert_allclose(none.raw_scores(clips), full[:, :40], atol=1e-5)
    order = list(voice_model_small.attribute_ids)
    picked = [40 + order.index(a) for a in some.attribute_ids]
    np.testing.assert_allclose(some.raw_scores(clips)[:, 40:], full[:, picked], atol=1e-5)
    with pytest.raises(ValueError, match="has no attribute head warmth"):
        VoiceEmotionModel.load("small", WeightSources(), cpu_runtime, attributes=("warmth",))


def test_attribute_and_head_cache_settings_read_the_same_everywhere(tmp_path):
    from pathlib import Path

    from empathic.labelstudio.settings import BackendSettings
    from empathic.models.head_stack import head_cache_dir
    from empathic.models.voice import attribute_selection

    assert attribute_selection("all") is None and attribute_selection("None") == ()
    assert attribute_selection(" valence, arousal ") == ("valence", "arousal")
    assert head_cache_dir("off") is None and head_cache_dir("") is None
    assert head_cache_dir("~/heads") == Path.home() / "heads"
    settings = BackendSettings(voice_attributes="valence", head_cache_dir=str(tmp_path))
    assert settings.voice_attribute_ids() == ("valence",) and settings.head_cache() == tmp_path
