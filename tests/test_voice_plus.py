"""Voice-Plus: Voice-Small's 55 heads plus 4 audio-quality experts on pooled encoder states, against a
reference written from its card and LAION's server; the experts in every output and in fusion."""

import html
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import webvtt

from empathic.audio import decode_audio
from empathic.exports.voice_json import WriteVoiceJSON
from empathic.exports.webvtt import WriteVTT
from empathic.hub import WeightSources
from empathic.labelstudio.config import ConfigError, parse_config
from empathic.labelstudio.predictions import build_prediction
from empathic.models.voice import VoiceEmotionModel, pooled_features
from empathic.persons.quality import QualityOptions, voice_quality
from empathic.registry import VOICE_MODELS
from empathic.results import VoiceAnalysis
from empathic.scoring import softmax
from empathic.taxonomy import EMOTIONS, VOICE_ATTRIBUTES, VOICE_QUALITY_EXPERTS
from empathic.voice_analysis import analyze_voice
from reference import pool_embedding, reference_voice_plus_scores

PLUS = VOICE_MODELS["plus"]
QUALITY_IDS = [q.id for q in VOICE_QUALITY_EXPERTS]


def _snapshot(repo_id: str, revision: str = "main") -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))


@pytest.fixture(scope="module")
def plus_model(voice_hub_cache, cpu_runtime):
    return VoiceEmotionModel.load("plus", WeightSources(), cpu_runtime)


@pytest.fixture(scope="module")
def plus_analysis(two_voices, plus_model) -> VoiceAnalysis:
    return analyze_voice(two_voices.path, plus_model)


def test_the_plus_entry_is_voice_small_with_four_quality_experts_on_bud_e_whisper():
    small = VOICE_MODELS["small"]
    assert PLUS.head_file_names() == small.head_file_names() and len(PLUS.head_file_names()) == 55
    assert PLUS.quality_file_names() == (
        "model_score_overall_quality_best.pth", "model_score_speech_quality_best.pth",
        "model_score_background_quality_best.pth", "model_score_content_enjoyment_best.pth")
    assert PLUS.backbone.repo_id == "laion/BUD-E-Whisper"
    assert PLUS.repo.revision == "441d220122d77cc43b60ffe3e13bf9358bf2fe8d"
    assert set(PLUS.download_patterns()) >= set(PLUS.quality_file_names())


def test_scores_equal_the_reference_from_the_card(two_voices, plus_analysis):
    audio = decode_audio(two_voices.path)
    encoder_dir = _snapshot("laion/BUD-E-Whisper")
    heads_dir = _snapshot(PLUS.repo.repo_id, PLUS.repo.revision)
    assert plus_analysis.model.backbone_repo == "laion/BUD-E-Whisper"  # the model's own encoder by default
    references = []
    for segment in plus_analysis.segments:
        reference = reference_voice_plus_scores(audio.window(segment.start_s, segment.end_s), encoder_dir, heads_dir)
        references.append(reference)
        quality = dict(segment.audio_quality)
        assert list(quality) == QUALITY_IDS
        np.testing.assert_allclose([quality[q.id] for q in VOICE_QUALITY_EXPERTS],
                                   [reference[q.file_key] for q in VOICE_QUALITY_EXPERTS], atol=1e-5, rtol=0)
        raw = {e.emotion_id: e.raw for e in segment.emotions}
        expected = np.array([reference[e.voice_key] for e in EMOTIONS])
        np.testing.assert_allclose([raw[e.id] for e in EMOTIONS], expected, atol=1e-5, rtol=0)
        # the shares are a softmax over the 40 emotions alone: the experts never enter it
        shares = {e.emotion_id: e.share for e in segment.emotions}
        np.testing.assert_allclose([shares[e.id] for e in EMOTIONS], softmax(expected), atol=1e-6)
        attributes = dict(segment.attributes)
        np.testing.assert_allclose([attributes[d.id] for d in VOICE_ATTRIBUTES],
                                   [reference[d.file_key] for d in VOICE_ATTRIBUTES], atol=1e-5, rtol=0)
    # The comparison can fail: different windows give expert values further apart than the tolerance.
    assert max(abs(references[0][q.file_key] - references[1][q.file_key]) for q in VOICE_QUALITY_EXPERTS) > 1e-4


def test_pooling_is_mean_min_max_and_unbiased_std_in_that_order():
    states = torch.randn(2, 1500, 16, generator=torch.Generator().manual_seed(0))
    pooled = pooled_features(states)
    assert pooled.shape == (2, 64)
    torch.testing.assert_close(pooled, pool_embedding(states))
    torch.testing.assert_close(pooled[:, 48:], states.std(dim=1, unbiased=True))
    # a biased std or another order would be another input: the check above can tell them apart
    assert (states.std(dim=1, unbiased=False) - pooled[:, 48:]).abs().max() > 1e-5
    assert not torch.allclose(pooled[:, 16:32], pooled[:, 32:48])


def test_plus_emotions_equal_voice_small_on_the_same_encoder(two_voices, plus_model, voice_hub_cache, cpu_runtime):
    """Voice-Plus re-hosts Voice-Small's heads: on one encoder both give the same 55 values."""
    small = VoiceEmotionModel.load("small", WeightSources(), cpu_runtime, encoder="bud-e-whisper")
    clips = [decode_audio(two_voices.path).window(0, 5)]
    plus_raw = plus_model.raw_scores(clips)
    assert plus_raw.shape == (1, 59)
    np.testing.assert_allclose(plus_raw[:, :55], small.raw_scores(clips), atol=1e-6)
    assert small.audio_quality(small.raw_scores(clips)) == [()]


def test_json_reports_the_experts_beside_the_attributes_with_their_scales(plus_analysis):
    document = json.loads(WriteVoiceJSON().render(plus_analysis))
    assert document["model_info"]["model_size"] == "plus"
    assert list(document["audio_quality_scales"]) == QUALITY_IDS
    assert document["audio_quality_scales"]["content_enjoyment"]["distilled_from"] == "AudioBox"
    assert document["audio_quality_scales"]["speech_quality"]["nominal_high"] == 5.0
    for segment, result in zip(document["segments"], plus_analysis.segments):
        assert list(segment["audio_quality"]) == QUALITY_IDS and len(segment["attributes"]) == 15
        assert segment["audio_quality"]["speech_quality"] == pytest.approx(dict(result.audio_quality)["speech_quality"],
                                                                           abs=1e-6)
        assert len(segment["emotions"]) == 40


def test_documents_of_other_models_keep_their_shape(two_voices, voice_model_small):
    document = analyze_voice(two_voices.path, voice_model_small).to_dict()
    assert "audio_quality_scales" not in document and all("audio_quality" not in s for s in document["segments"])


def test_the_cache_document_keeps_the_experts(plus_analysis):
    assert VoiceAnalysis.from_cache(json.loads(json.dumps(plus_analysis.to_cache()))) == plus_analysis


def test_webvtt_notes_the_scales_and_each_cues_values(plus_analysis):
    text = WriteVTT(top_k=3).render(plus_analysis)
    header = text.split("\n\n")[1]
    assert header.startswith("NOTE") and "MOS-like, roughly 1-5, higher is better" in header
    assert all(f"{q}: " in header for q in QUALITY_IDS)
    captions = list(webvtt.from_string(text))  # the NOTE blocks do not disturb a standard reader
    assert len(captions) == len(plus_analysis.segments)
    for caption, segment in zip(captions, plus_analysis.segments):
        assert html.unescape(caption.text.splitlines()[-1]).startswith("EMOTIONS: ")
        values = ", ".join(f"{k}={v:.2f}" for k, v in segment.audio_quality)
        assert f"NOTE\nAUDIO QUALITY {segment.segment_index + 1}: {values}\n\n{segment.segment_index + 1}\n" in text


PLUS_CONFIG = """<View>
  <Audio name="audio" value="$audio"/>
  <Labels name="emotion" toName="audio" model_size="plus"><Label value="Sadness"/><Label value="Elation"/></Labels>
  <Number name="speech_quality" toName="audio" perRegion="true" min="1" max="5"/>
  <Number name="noise" toName="audio" perRegion="true" model_attribute="Background Quality"/>
  <Number name="arousal" toName="audio" perRegion="true"/>
</View>"""


def test_label_studio_numbers_are_matched_to_the_experts_by_name(plus_analysis):
    plan = parse_config(PLUS_CONFIG)
    numbers = {c.name: c.attribute for c in plan.audio().controls if c.type == "number"}
    assert numbers == {"speech_quality": "speech_quality", "noise": "background_quality", "arousal": "arousal"}
    prediction = build_prediction(plan, {"audio": "a.wav"}, "v1", voice=plus_analysis)
    values = {(r["id"], r["from_name"]): r["value"]["number"] for r in prediction["result"] if r["type"] == "number"}
    for segment in plus_analysis.segments:
        quality = dict(segment.audio_quality)
        region = f"voice{segment.segment_index + 1}"
        assert values[(region, "noise")] == round(quality["background_quality"], 4)
        assert values[(region, "speech_quality")] == round(min(5.0, max(1.0, quality["speech_quality"])), 4)
    with pytest.raises(ConfigError, match="model_size='plus' is for an Audio"):
        parse_config('<View><Video name="v" value="$v"/><VideoRectangle name="box" toName="v" model_size="plus"/>'
                     '</View>')


def test_fusion_takes_its_voice_quality_from_the_plus_experts(plus_analysis):
    options = QualityOptions()
    segment = plus_analysis.segments[0]
    good = replace(segment, audio_quality=(("overall_quality", 3.8), ("speech_quality", 4.0),
                                           ("background_quality", 4.5), ("content_enjoyment", 3.0)))
    noisy = replace(good, audio_quality=(("overall_quality", 2.0), ("speech_quality", 3.0),
                                         ("background_quality", 1.6), ("content_enjoyment", 3.0)))
    from empathic.persons.evidence import SegmentQuality

    clean_levels = SegmentQuality(0, 30.0, 0.9)  # the SNR estimate would call both segments clean
    assert voice_quality(good, clean_levels, False, options) == (1.0, ())
    quality, flags = voice_quality(noisy, clean_levels, False, options)
    assert quality == pytest.approx((3.0 - 1) / 3 * (1.6 - 1) / 3, abs=1e-4) and flags == ("noisy_background",)
    assert voice_quality(noisy, clean_levels, True, options)[0] == 0.0  # overlapped speech still counts 0
    # without the experts (other models) the SNR and speech-probability estimate stays
    assert voice_quality(replace(segment, audio_quality=()), SegmentQuality(0, 5.0, 0.9), False, options)[1] == (
        "low_snr",)
