"""Linking, quality, fusion and persons on constructed analyses: the truth is known exactly."""

import numpy as np
import pytest

from empathic.persons.analysis import analyze_persons, make_persons
from empathic.persons.evidence import ENVELOPE_RATE_HZ, AudioVisualEvidence, SegmentQuality, TrackMotion
from empathic.persons.fusion import FusionOptions, face_view, fuse, js_divergence, share_vector, voice_view
from empathic.persons.linking import make_linker
from empathic.persons.quality import QualityOptions, face_quality, overlapped_segments
from empathic.results import Box, EmotionScore, FaceAnalysis, FaceObservation, FrameRecord, ModelInfo, VoiceAnalysis, \
    VoiceSegment
from empathic.taxonomy import EMOTION_IDS

DURATION = 12.0
INFO = ModelInfo("face", "small", "r", "c", "main", "b", "c", "fp32")


def _emotions(top: str, peak: float = 0.5) -> tuple[EmotionScore, ...]:
    rest = (1 - peak) / 39
    shares = {e: (peak if e == top else rest) for e in EMOTION_IDS}
    ordered = sorted(EMOTION_IDS, key=lambda e: -shares[e])
    return tuple(EmotionScore(e, 1.0, 1.0, shares[e], ordered.index(e) + 1) for e in ordered)


def _face(tracks: dict[int, dict], pps: float = 2.0) -> FaceAnalysis:
    """tracks: id -> {"box": Box, "top": emotion, "sharpness": float}; seen in every sample."""
    frames, faces = [], []
    for index in range(int(DURATION * pps)):
        t = index / pps
        frames.append(FrameRecord(index, int(t * 25), t, 960, 540))
        for track_id, spec in tracks.items():
            faces.append(FaceObservation(index, int(t * 25), t, spec["box"], spec.get("confidence", 0.95),
                                         track_id, _emotions(spec["top"]), (), spec.get("sharpness", 200.0)))
    return FaceAnalysis({"duration_s": DURATION, "width": 960, "height": 540, "average_fps": 25.0,
                         "file_name": "x.mp4"}, tuple(frames), tuple(faces), INFO, (("pps", pps),))


def _voice(segments: list[tuple[float, float, str | None, str]]) -> VoiceAnalysis:
    return VoiceAnalysis({"duration_s": DURATION}, tuple(
        VoiceSegment(i, a, b, speaker, _emotions(top), ()) for i, (a, b, speaker, top) in enumerate(segments)),
        ModelInfo("voice", "small", "v", "c", "main", "w", "c", "fp32"), "vad", (("segmentation", "vad"),))


def _evidence(speaking: dict[int, list[tuple[float, float]]], tracks=(1, 2), quality=None, seed=0):
    """An envelope with syllable-rate bursts inside the spans; each track's mouth moves with the
    envelope inside its own spans (40 ms ahead) and only jitters elsewhere."""
    rng = np.random.default_rng(seed)
    grid = np.arange(int(DURATION * ENVELOPE_RATE_HZ)) / ENVELOPE_RATE_HZ
    envelope = np.zeros_like(grid)
    for spans in speaking.values():
        for a, b in spans:
            inside = (grid >= a) & (grid < b)
            envelope[inside] = 0.1 * (1 + np.sin(2 * np.pi * 4.3 * grid[inside] + rng.uniform(0, 6))) \
                * rng.uniform(0.5, 1.0, inside.sum())
    times = np.arange(0.04, DURATION, 0.08)
    motions = []
    for track_id in tracks:
        energy = rng.uniform(0, 0.3, len(times))
        for a, b in speaking.get(track_id, []):
            inside = (times >= a) & (times < b)
            energy[inside] += 40 * np.interp(times[inside] + 0.04, grid, envelope)
        motions.append(TrackMotion(track_id, times, energy.astype(np.float32)))
    return AudioVisualEvidence(tuple(motions), envelope.astype(np.float32), tuple(quality or ()))


BOXES = {1: {"box": Box(100, 100, 150, 150), "top": "elation"}, 2: {"box": Box(600, 100, 150, 150), "top": "sadness"}}


def test_diarized_speakers_go_to_the_face_that_moves_with_them_and_the_third_is_off_screen():
    voice = _voice([(1, 3, "S_A", "elation"), (4, 6, "S_B", "sadness"), (6.5, 8, "S_A", "elation"),
                    (9, 11, "S_C", "anger")])
    evidence = _evidence({1: [(1, 3), (6.5, 8)], 2: [(4, 6)], 3: [(9, 11)]}, tracks=(1, 2))
    links = make_linker().link(_face(BOXES), voice, evidence)
    assert [(l.speaker_id, l.track_id) for l in links] == [("S_A", 1), ("S_B", 2), ("S_A", 1), ("S_C", None)]
    assert links[0].evidence.correlation > 0.8 and 0.0 <= links[0].evidence.lag_s <= 0.12
    assert links[0].evidence.candidates[0][0] == 1 and len(links[0].evidence.candidates) == 2
    assert links[3].off_screen and 0 <= links[3].confidence <= 1 and 0.4 < links[0].confidence <= 1
    # swapping whose mouth moves swaps the links
    swapped = _evidence({2: [(1, 3), (6.5, 8)], 1: [(4, 6)], 3: [(9, 11)]}, tracks=(1, 2))
    assert [l.track_id for l in make_linker().link(_face(BOXES), voice, swapped)] == [2, 1, 2, None]


def test_segments_without_speakers_are_linked_one_by_one_and_still_faces_never():
    voice = _voice([(1, 3, None, "elation"), (4, 6, None, "sadness"), (9, 11, None, "anger")])
    evidence = _evidence({1: [(1, 3)], 2: [(4, 6)], 3: [(9, 11)]})
    assert [l.track_id for l in make_linker().link(_face(BOXES), voice, evidence)] == [1, 2, None]
    still = _evidence({3: [(1, 3), (4, 6), (9, 11)]})  # the envelope is there, no mouth moves
    assert all(l.off_screen for l in make_linker().link(_face(BOXES), voice, still))


def test_persons_are_faces_first_then_off_screen_voices():
    voice = _voice([(1, 3, "S_A", "elation"), (9, 11, "S_C", "anger")])
    links = make_linker().link(_face(BOXES), voice, _evidence({1: [(1, 3)], 3: [(9, 11)]}))
    persons, segment_person = make_persons(_face(BOXES), voice, links)
    assert [(p.person_id, p.track_id, p.speaker_id) for p in persons] == [
        ("PERSON_1", 1, "S_A"), ("PERSON_2", 2, None), ("PERSON_3", None, "S_C")]
    assert segment_person == {0: "PERSON_1", 1: "PERSON_3"}


def test_face_quality_follows_size_sharpness_and_confidence():
    options = QualityOptions()
    crisp = FaceObservation(0, 0, 0.0, Box(0, 0, 150, 150), 1.0, 1, (), (), 500.0)
    assert face_quality(crisp, options) == (1.0, ())
    blurred = FaceObservation(0, 0, 0.0, Box(0, 0, 150, 150), 1.0, 1, (), (), 10.0)
    assert face_quality(blurred, options)[1] == ("blurred_face",) and face_quality(blurred, options)[0] < 0.1
    tiny = FaceObservation(0, 0, 0.0, Box(0, 0, 40, 40), 1.0, 1, (), (), 500.0)
    assert face_quality(tiny, options)[1] == ("small_face",) and face_quality(tiny, options)[0] == pytest.approx(1 / 3,
                                                                                                              abs=1e-3)


def _fused_top_with(face_spec: dict, voice_quality=(30.0, 0.8), speakers=("S_A", "S_A")):
    face = _face({1: {**face_spec, "top": "elation"}})
    voice = _voice([(1, 3, speakers[0], "sadness"), (2.5, 3.5, speakers[1], "sadness")])
    quality = [SegmentQuality(0, *voice_quality), SegmentQuality(1, *voice_quality)]
    evidence = _evidence({1: [(1, 3)]}, tracks=(1,), quality=quality)
    persons = analyze_persons(face, voice, evidence, make_linker(), FusionOptions())
    return next(s for s in persons.segments if s.segment_index == 0)


def test_fusion_leans_on_the_better_modality_and_flags_conflicts():
    sharp = _fused_top_with({"box": Box(100, 100, 150, 150), "sharpness": 400.0})
    assert sharp.face.weight == pytest.approx(sharp.voice.weight, abs=0.05)  # both of full quality
    assert sharp.conflict  # elation on the face, sadness in the voice, both trusted
    blurred = _fused_top_with({"box": Box(100, 100, 150, 150), "sharpness": 5.0})
    assert blurred.face.weight < 0.1 and EMOTION_IDS[int(np.argmax(blurred.fused))] == "sadness"
    assert "blurred_face" in blurred.face.flags and not blurred.conflict  # a blurred face is no conflict
    tiny = _fused_top_with({"box": Box(100, 100, 40, 40), "sharpness": 400.0})
    assert tiny.face.weight < sharp.face.weight and "small_face" in tiny.face.flags
    noisy = _fused_top_with({"box": Box(100, 100, 150, 150), "sharpness": 400.0}, voice_quality=(3.0, 0.8))
    assert noisy.voice.weight < 0.2 and "low_snr" in noisy.voice.flags
    assert EMOTION_IDS[int(np.argmax(noisy.fused))] == "elation"


def test_overlapped_speech_gives_the_voice_no_weight():
    voice = _voice([(1, 3, "S_A", "sadness"), (2.5, 3.5, "S_B", "anger")])
    assert overlapped_segments(voice) == {0, 1}
    view = voice_view([voice.segments[0]], None, {0}, 1, 3, QualityOptions())
    assert view.quality == 0 and view.flags == ("overlapped_speech",)
    seen = face_view([FaceObservation(0, 0, 1.0, Box(0, 0, 150, 150), 1.0, 1, _emotions("elation"), (), 400.0)],
                     np.array([[1.0, 3.0]]), 1, 3, QualityOptions())
    fused = fuse("PERSON_1", 1, 3, seen, view, FusionOptions())
    assert fused.voice.weight == 0 and np.allclose(fused.fused, seen.shares) and not fused.conflict


def test_divergence_and_share_vectors():
    p, q = share_vector(_emotions("elation")), share_vector(_emotions("sadness"))
    assert js_divergence(p, p) == pytest.approx(0, abs=1e-12)
    assert 0.1 < js_divergence(p, q) <= 1 and p.sum() == pytest.approx(1)


def test_shots_are_summarised_per_person():
    voice = _voice([(1, 3, "S_A", "elation"), (4, 6, "S_B", "sadness"), (6.5, 8, "S_A", "elation")])
    evidence = _evidence({1: [(1, 3), (6.5, 8)], 2: [(4, 6)]})
    persons = analyze_persons(_face(BOXES), voice, evidence, make_linker(), FusionOptions(), shots_s=(5.0,))
    assert [(s.start_s, s.end_s) for s in persons.shots] == [(0.0, 5.0), (5.0, DURATION)]
    first, second = ({p.person_id: p for p in shot.persons} for shot in persons.shots)
    assert first["PERSON_1"].speaking_s == pytest.approx(2.0) and second["PERSON_1"].speaking_s == pytest.approx(1.5)
    assert first["PERSON_2"].speaking_s == pytest.approx(1.0) and second["PERSON_2"].speaking_s == pytest.approx(1.0)
    assert first["PERSON_1"].on_screen_s == pytest.approx(5.0) and second["PERSON_2"].on_screen_s == pytest.approx(7.0)
    assert EMOTION_IDS[int(np.argmax(first["PERSON_1"].face_shares))] == "elation"
    assert EMOTION_IDS[int(np.argmax(first["PERSON_2"].voice_shares))] == "sadness"
    # the constructed faces and voices agree on every person: no conflict anywhere
    assert not any(row.conflicts for shot in persons.shots for row in shot.persons)
