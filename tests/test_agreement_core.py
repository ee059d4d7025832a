"""Agreement between the model and annotators, on constructed cases whose figures are worked out
by hand below (not by the library under test)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from empathic.labelstudio.annotation_results import ResultError, region_set
from empathic.review.agreement import AgreementOptions, AnnotatedTask, agreement
from empathic.review.matching import match_regions, outcomes
from empathic.review.regions import Keyframe, RegionSet, Span, Track, track_boxes


def _span(start, end, label, control="voice", region_id=None, **extra) -> Span:
    return Span(region_id=region_id or f"{control}-{start}", control=control, start_s=start, end_s=end,
                labels=(label,), **extra)


def _control(report, name):
    return next(c for c in report.controls if c.control == name)


def _label(control, name):
    return next(label for label in control.labels if label.label == name)


def test_the_editor_rules_for_keyframes_hold_interpolation_and_lifespan():
    track = Track("t", "box", (Keyframe(1, 10, 10, 20, 20), Keyframe(5, 30, 10, 20, 20, enabled=False),
                               Keyframe(10, 50, 50, 10, 10)))
    boxes = track_boxes(track, 12)
    # frames 1..5: moving linearly from x=10 to x=30 (5 units per frame), shown through frame 5
    assert boxes[:5, 0].tolist() == [10, 15, 20, 25, 30]
    # after the disabled keyframe on frame 5 nothing is shown until the next keyframe
    assert np.isnan(boxes[5:9, 0]).all()
    # from frame 10 the last keyframe's box holds to the end
    assert boxes[9:, 0].tolist() == [50, 50, 50]
    # before the first keyframe there is no box
    late = Track("u", "box", (Keyframe(4, 1, 1, 1, 1),))
    assert np.isnan(track_boxes(late, 6)[:3, 0]).all() and not np.isnan(track_boxes(late, 6)[3:, 0]).any()


def test_a_relabelled_segment_scores_by_hand_worked_figures():
    """4 bins of 1 s. Model: Happy 0-2 s, Sad 2-4 s. Annotator: Happy 0-2 s, Angry 2-4 s."""
    prediction = RegionSet(spans=(_span(0, 2, "Happy"), _span(2, 4, "Sad")), duration_s=4.0)
    annotation = RegionSet(spans=(_span(0, 2, "Happy"), _span(2, 4, "Angry")), duration_s=4.0,
                           annotator="ann@x", source_id=7)
    report = agreement([AnnotatedTask(1, prediction, (annotation,))])
    voice = _control(report, "voice")
    assert voice.units == 4
    happy, sad, angry = _label(voice, "Happy"), _label(voice, "Sad"), _label(voice, "Angry")
    assert (happy.true_positive, happy.false_positive, happy.false_negative, happy.true_negative) == (2, 0, 0, 2)
    assert happy.precision == happy.recall == happy.f1 == 1.0 and happy.kappa == pytest.approx(1.0)
    # Sad: model 0011, annotator 0000 -> precision 0/2, recall undefined, F1 0; kappa: po = pe = 0.5 -> 0
    assert (sad.true_positive, sad.false_positive, sad.false_negative) == (0, 2, 0)
    assert sad.precision == 0.0 and sad.recall is None and sad.f1 == 0.0 and sad.kappa == pytest.approx(0.0)
    assert (angry.false_negative, angry.precision, angry.recall) == (2, None, 0.0)
    # the confusion of whole label sets: Happy/Happy twice, Sad (model) / Angry (annotator) twice
    categories = list(voice.categories)
    assert voice.confusion[categories.index("Happy")][categories.index("Happy")] == 2
    assert voice.confusion[categories.index("Sad")][categories.index("Angry")] == 2
    assert report.outcomes.kept == 1 and report.outcomes.edited == 1 and report.outcomes.relabelled == 1
    assert report.outcomes.moved == 0 and report.outcomes.deleted == report.outcomes.added == 0


def test_a_moved_segment_gives_the_hand_computed_kappa_f1_and_alpha():
    """10 bins. Model Happy on bins 0-5, annotator Happy on bins 2-7: TP 4, FP 2, FN 2, TN 2.
    kappa: po = 0.6, pe = 0.6*0.6 + 0.4*0.4 = 0.52 -> (0.6 - 0.52) / 0.48 = 1/6.
    F1 = 2*4 / (2*4 + 2 + 2) = 2/3.
    alpha (nominal, 2 raters, 10 units): coincidences o00 = 4, o11 = 8, o01 = o10 = 4; n0 = 8, n1 = 12,
    n = 20; Do = 8/20, De = 2*8*12 / (20*19) -> alpha = 1 - 0.4 * 380/192 = 40/192."""
    prediction = RegionSet(spans=(_span(0, 6, "Happy"),), duration_s=10.0)
    annotation = RegionSet(spans=(_span(2, 8, "Happy"),), duration_s=10.0, annotator="a")
    report = agreement([AnnotatedTask(1, prediction, (annotation,))])
    happy = _label(_control(report, "voice"), "Happy")
    assert (happy.true_positive, happy.false_positive, happy.false_negative, happy.true_negative) == (4, 2, 2, 2)
    assert happy.kappa == pytest.approx(1 / 6)
    assert happy.f1 == pytest.approx(2 / 3)
    assert happy.alpha == pytest.approx(40 / 192)
    # time IoU 4/8 = 0.5 reaches the default minimum: one suggestion, edited (moved), not deleted + added
    assert (report.outcomes.edited, report.outcomes.moved, report.outcomes.deleted) == (1, 1, 0)


def test_deleted_and_added_segments_and_two_annotators():
    prediction = RegionSet(spans=(_span(0, 2, "Happy"), _span(6, 8, "Sad")), duration_s=8.0)
    first = RegionSet(spans=(_span(0, 2, "Happy"), _span(3, 5, "Fear")), annotator="a")  # Sad deleted, Fear added
    second = RegionSet(spans=(_span(0, 2, "Happy"), _span(6, 8, "Sad")), annotator="b")  # all kept
    report = agreement([AnnotatedTask(5, prediction, (first, second)), AnnotatedTask(6, None, (first,)),
                        AnnotatedTask(7, prediction, ())])
    assert report.tasks_compared == 1 and report.annotations_compared == 2
    assert report.tasks_without_prediction == (6,) and report.tasks_without_annotation == (7,)
    assert (report.outcomes.kept, report.outcomes.deleted, report.outcomes.added) == (3, 1, 1)
    per_label = report.outcomes.to_dict()["per_label"]
    assert per_label["Sad"] == {"deleted": 1, "kept": 1} and per_label["Fear"] == {"added": 1}
    voice = _control(report, "voice")
    assert voice.alpha_annotators is not None and voice.alpha is not None
    # 8 bins, two annotators: 16 comparisons of the model with an annotator
    happy = _label(voice, "Happy")
    assert happy.true_positive + happy.false_positive + happy.false_negative + happy.true_negative == 16
    assert happy.f1 == 1.0


def test_tracks_pair_by_box_overlap_and_carry_their_choices():
    def track(region_id, x, label, enabled_end=50):
        return Track(region_id, "box", (Keyframe(1, x, 10, 20, 20), Keyframe(enabled_end, x, 10, 20, 20, False)),
                     labels=("Face",), choices=(("face_emotion", (label,)),))

    prediction = RegionSet(tracks=(track("face1", 10, "Joy"), track("face2", 60, "Anger")), fps=10.0,
                           frames_count=50, duration_s=5.0)
    # face1 kept as it is; face2 nudged by 2 points and relabelled; a third face added far away
    annotation = RegionSet(tracks=(track("a1", 10, "Joy"), track("a2", 62, "Sadness"),
                                   track("a3", 40, "Joy", enabled_end=20)), fps=10.0, frames_count=50,
                           annotator="a")
    pairs = match_regions(prediction, annotation)
    by_pred = {p.predicted.region_id: p for p in pairs if p.predicted is not None}
    assert by_pred["face1"].annotated.region_id == "a1" and by_pred["face1"].outcome == "kept"
    assert by_pred["face2"].annotated.region_id == "a2"
    assert by_pred["face2"].moved and by_pred["face2"].relabelled
    # IoU of two 20x20 boxes 2 points apart: 18*20 / (800 - 360)
    assert by_pred["face2"].overlap == pytest.approx(360 / 440)
    summary = outcomes(pairs)
    assert (summary.kept, summary.edited, summary.added, summary.deleted) == (1, 1, 1, 0)
    report = agreement([AnnotatedTask(1, prediction, (annotation,))])
    emotion = _control(report, "face_emotion")
    joy = _label(emotion, "Joy")
    # 5 bins (centres 0.5..4.5 s -> frames 6, 16, 26, 36, 46): face1 shown in all 5, a3 in the first 2
    assert (joy.true_positive, joy.false_positive, joy.false_negative) == (5, 0, 2)
    anger = _label(emotion, "Anger")
    assert (anger.true_positive, anger.false_positive) == (0, 5)


def test_clip_choices_are_one_unit_per_task():
    prediction = RegionSet(clip_choices=(("mood", ("Calm",)),))
    tasks = [AnnotatedTask(i, prediction, (RegionSet(clip_choices=(("mood", (label,)),), annotator="a"),))
             for i, label in enumerate(["Calm", "Calm", "Tense"])]
    mood = _control(agreement(tasks), "mood")
    assert mood.kind == "clip" and mood.units == 3
    calm = _label(mood, "Calm")
    assert (calm.true_positive, calm.false_positive) == (2, 1) and calm.precision == pytest.approx(2 / 3)


def test_label_studio_results_become_region_sets():
    result = [
        {"id": "face1", "from_name": "box", "to_name": "video", "type": "videorectangle", "origin": "prediction",
         "value": {"framesCount": 50, "duration": 2.0, "labels": ["Face"], "sequence": [
             {"frame": 1, "x": 1, "y": 2, "width": 3, "height": 4, "enabled": True},
             {"frame": 9, "x": 1, "y": 2, "width": 3, "height": 4, "enabled": False}]}},
        {"id": "face1", "from_name": "face_emotion", "to_name": "video", "type": "choices",
         "value": {"choices": ["Joy"]}},
        {"id": "tl", "from_name": "timeline", "to_name": "video", "type": "timelinelabels",
         "value": {"ranges": [{"start": 26, "end": 50}], "timelinelabels": ["Joy"]}},
        {"id": "v1", "from_name": "voice", "to_name": "audio", "type": "labels", "meta": {"text": ["SPEAKER_00"]},
         "value": {"start": 0.5, "end": 1.5, "channel": 0, "labels": ["Sadness"]}},
        {"id": "v1", "from_name": "transcript", "to_name": "audio", "type": "textarea",
         "value": {"start": 0.5, "end": 1.5, "text": ["hello there"]}},
        {"id": "clip", "from_name": "mood", "to_name": "audio", "type": "choices", "value": {"choices": ["Calm"]}},
    ]
    regions = region_set(result, fps=25.0, annotator="a", source_id=3)
    (track,) = regions.tracks
    assert track.labels == ("Face",) and track.choices == (("face_emotion", ("Joy",)),)
    assert [k.frame for k in track.keyframes] == [1, 9] and regions.frames_count == 50
    timeline, audio = regions.timeline()[0], regions.audio()[0]
    assert (timeline.start_s, timeline.end_s, timeline.frames) == (1.0, 2.0, (26, 50))
    assert (audio.text, audio.meta_text, audio.labels) == ("hello there", "SPEAKER_00", ("Sadness",))
    assert regions.clip_choices == (("mood", ("Calm",)),)
    with pytest.raises(ResultError, match="frame rate is unknown"):
        region_set(result)
    with pytest.raises(ResultError, match="keyframe lacks"):
        region_set([{"id": "f", "from_name": "box", "type": "videorectangle",
                     "value": {"sequence": [{"frame": 1, "x": 1}]}}])
    assert math.isclose(regions.spans[0].start_s, 0.5)


def test_bins_follow_the_option():
    prediction = RegionSet(spans=(_span(0, 3, "Happy"),), duration_s=3.0)
    annotation = RegionSet(spans=(_span(0, 3, "Happy"),), annotator="a")
    report = agreement([AnnotatedTask(1, prediction, (annotation,))], AgreementOptions(bin_s=0.5))
    assert _control(report, "voice").units == 6
