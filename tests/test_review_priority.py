"""The review priority (the prediction score) on constructed analyses: unclear, poorly seen or
poorly heard, conflicting tasks come first when sorted ascending."""

import numpy as np
import pytest

from empathic.persons.analysis import analyze_persons
from empathic.persons.evidence import SegmentQuality
from empathic.persons.fusion import FusionOptions
from empathic.persons.linking import make_linker
from empathic.results import Box, FaceAnalysis
from empathic.review_priority import certainty, review_priority
from test_persons_core import BOXES, _emotions, _evidence, _face, _voice


def test_certainty_is_zero_for_even_shares_and_grows_with_a_clear_top_emotion():
    assert certainty(np.full(40, 1 / 40)) == pytest.approx(0.0, abs=1e-9)
    one_hot = np.zeros(40)
    one_hot[3] = 1.0
    assert certainty(one_hot) == pytest.approx(1.0)
    clear = np.array([e.share for e in _emotions("elation", peak=0.5)])
    vague = np.array([e.share for e in _emotions("elation", peak=0.05)])
    assert 0 < certainty(vague) < certainty(clear) < 1
    # the formula, by hand: lead (0.5 - r) / 0.5 and 1 - H / ln 40, averaged
    r = 0.5 / 39
    entropy = -(0.5 * np.log(0.5) + 39 * r * np.log(r)) / np.log(40)
    assert certainty(clear) == pytest.approx(((0.5 - r) / 0.5 + 1 - entropy) / 2)


def _single_face(**spec) -> FaceAnalysis:
    return _face({1: {"box": Box(100, 100, 150, 150), "top": "elation", "sharpness": 400.0, **spec}})


def test_faces_count_by_clarity_quality_and_presence():
    clear = review_priority(face=_single_face())
    assert clear > 0.4
    assert review_priority(face=_single_face(box=Box(100, 100, 40, 40))) < clear / 2  # a tiny face
    assert review_priority(face=_single_face(sharpness=5.0)) < clear / 10  # a blurred face
    nobody = _single_face()
    nobody = FaceAnalysis(nobody.media, nobody.frames, (), nobody.model, nobody.parameters)
    assert review_priority(face=nobody) == 0.0  # nothing suggested: all left to the annotator
    half = _single_face()
    half = FaceAnalysis(half.media, half.frames, tuple(o for o in half.faces if o.sample_index % 2 == 0),
                        half.model, half.parameters)
    assert review_priority(face=half) == pytest.approx(clear / 2, rel=1e-3)  # seen in half the samples


def test_voices_count_by_clarity_and_quality_and_overlaps_count_for_nothing():
    alone = _voice([(1, 3, "S_A", "sadness"), (4, 6, "S_B", "anger")])
    clear = review_priority(voice=alone)
    overlapping = _voice([(1, 3, "S_A", "sadness"), (2.5, 4, "S_B", "anger")])
    assert clear > 0.4 and review_priority(voice=overlapping) == 0.0
    noisy = _evidence({}, quality=[SegmentQuality(0, 4.0, 0.9), SegmentQuality(1, 4.0, 0.9)])
    assert review_priority(voice=alone, evidence=noisy) < clear / 4
    assert review_priority(voice=_voice([])) == 0.0


def test_conflicts_between_face_and_voice_lower_the_priority_and_sorting_shows_the_worst_first():
    def task(voice_top: str):
        face = _face({1: {**BOXES[1], "sharpness": 400.0}})
        voice = _voice([(1, 3, "S_A", voice_top), (6.5, 8, "S_A", voice_top)])
        quality = [SegmentQuality(0, 30.0, 0.9), SegmentQuality(1, 30.0, 0.9)]
        evidence = _evidence({1: [(1, 3), (6.5, 8)]}, tracks=(1,), quality=quality)
        persons = analyze_persons(face, voice, evidence, make_linker(), FusionOptions())
        return review_priority(face, voice, persons, evidence)

    agreeing, conflicting = task("elation"), task("sadness")  # the face shows elation
    assert conflicting == 0.0 < agreeing  # face and voice disagree in every cell where both are trusted
    blurred = review_priority(face=_single_face(sharpness=5.0))
    order = sorted({"agreeing": agreeing, "conflicting": conflicting, "blurred": blurred}.items(),
                   key=lambda item: item[1])
    assert [name for name, _ in order] == ["conflicting", "blurred", "agreeing"]
