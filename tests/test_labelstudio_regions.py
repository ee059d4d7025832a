"""Labeling configs -> plans -> Label Studio predictions, checked by the SDK's validator and ours."""

from pathlib import Path

import numpy as np
import pytest
from label_studio_sdk.label_interface import LabelInterface

from empathic.face_analysis import FaceAnalysisOptions, analyze_faces
from empathic.labelstudio.config import ConfigError, parse_config
from empathic.labelstudio.mapping import (DEFAULT_THRESHOLD, UnmappableConfigError, map_labels, require_mappable,
                                          resolve)
from empathic.labelstudio.predictions import (PredictionError, build_prediction, editor_frame_rate, frame_rate,
                                              frame_rate_field, prediction_problems, set_task_field)
from empathic.labelstudio.regions import FrameClock, video_rectangles
from empathic.results import Box, FaceAnalysis, FaceObservation, FrameRecord
from empathic.segments.vad import VadOptions
from empathic.timeline import SmoothingOptions, sample_extents, smooth, track_extents
from empathic.voice_analysis import VoiceAnalysisOptions, analyze_voice
from media_factory import moving_face_video

CONFIGS = Path(__file__).resolve().parents[1] / "labeling_configs"
FACE_PPS = 5.0


@pytest.fixture(scope="module")
def face_analysis(media_dir, face_model_small):
    clip, _ = moving_face_video(media_dir / "ls_two_faces.mp4", seconds=2.0, fps=25, faces=2)
    return analyze_faces(clip, face_model_small, FaceAnalysisOptions(pps=FACE_PPS))


@pytest.fixture(scope="module")
def voice_analysis(two_voices, voice_model_small):
    return analyze_voice(two_voices.path, voice_model_small, VoiceAnalysisOptions(segmentation="vad", vad=VadOptions()))


def test_names_resolve_to_laion_emotions_and_groups():
    assert resolve("Jealousy & Envy") == ("jealousy_envy",) == resolve("jealousy_envy")
    assert resolve("surprise") == ("astonishment_surprise",)
    assert resolve("Cognitive States and Processes") == ("concentration", "confusion")
    assert len(resolve("negative")) == 16 and "sadness" in resolve("Sad") and resolve("Neutral") == ()
    mapping = map_labels("c", {"Joy": {"predicted_values": "elation, amusement"}, "Sadness": {}, "Neutral": {}})
    assert [(t.label, t.emotion_ids) for t in mapping.targets] == [("Joy", ("elation", "amusement")),
                                                                   ("Sadness", ("sadness",))]
    assert mapping.unmapped == ("Neutral",)
    assert mapping.scores({"elation": 0.1, "amusement": 0.3, "sadness": 0.2}) == [("Joy", 0.3), ("Sadness", 0.2)]
    with pytest.raises(UnmappableConfigError, match="'Chair'.*LAION's 40 emotions"):
        require_mappable(map_labels("furniture", {"Chair": {}}))
    with pytest.raises(UnmappableConfigError, match="'glee'"):
        map_labels("c", {"Joy": {"predicted_values": "glee"}})


def test_every_shipped_config_parses_into_a_plan():
    plans = {p.stem: parse_config(p.read_text()) for p in CONFIGS.glob("*.xml")}
    assert sorted(plans) == ["audio_voice", "basic_emotions", "video_face_voice", "video_faces"]
    video = plans["video_faces"].video()
    assert video.frame_rate == "$fps" and {c.type for c in video.controls} >= {"videorectangle", "timelinelabels"}
    assert plans["video_faces"].video().control("choices", per_region=True).settings.top_k == 3
    audio = plans["audio_voice"].audio()
    assert audio.control("labels").settings.segmentation == "vad"
    assert {c.attribute for c in audio.controls if c.type == "number"} == {"valence", "arousal"}
    both = plans["video_face_voice"]
    assert both.video().value_key == both.audio().value_key == "video"
    basic = plans["basic_emotions"].video().control("labels")
    assert [t.label for t in basic.mapping.targets] == ["Happy", "Sad", "Angry", "Fearful", "Surprised", "Disgusted"]


def test_configs_without_anything_to_predict_are_refused_with_the_usable_names():
    with pytest.raises(UnmappableConfigError, match=r"'Cat', 'Dog'.*Positive High-Energy Emotions"):
        parse_config('<View><Audio name="a" value="$audio"/><Labels name="l" toName="a">'
                     '<Label value="Cat"/><Label value="Dog"/></Labels></View>')
    with pytest.raises(ConfigError, match="no <Video> or <Audio>"):
        parse_config('<View><Image name="i" value="$image"/></View>')
    with pytest.raises(ConfigError, match="not valid XML"):
        parse_config("<View><Video")
    with pytest.raises(ConfigError, match="model_segmentation='karaoke'"):
        parse_config('<View><Audio name="a" value="$a"/><Labels name="l" toName="a" model_segmentation="karaoke">'
                     '<Label value="Sadness"/></Labels></View>')


def test_frame_clock_is_one_based_and_inclusive():
    clock = FrameClock(25, 2.0)
    assert clock.frames_count == 50
    assert [clock.frame_at(t) for t in (0, 0.039, 0.04, 1.99, 5.0)] == [1, 1, 2, 50, 50]
    assert [clock.last_frame_before(t) for t in (0.04, 0.05, 1.0, 2.0)] == [1, 2, 25, 50]


def test_hysteresis_keeps_a_hovering_score_on_and_drops_short_blips():
    times = np.arange(12) * 0.5
    scores = [0, 0.06, 0.045, 0.05, 0.044, 0.06, 0.01, 0, 0.07, 0, 0, 0]  # on at 0.05, off below 0.035
    segments = smooth(sample_extents(times, 6.0), scores, SmoothingOptions(0.05, off_ratio=0.7, min_duration_s=1.0))
    assert [(s.start_s, s.end_s) for s in segments] == [(0.5, 3.0)]


def _check_prediction(config_text: str, prediction: dict, duration_s: float) -> None:
    errors = LabelInterface(config_text).validate_prediction(prediction, return_errors=True)
    assert errors in (True, []), errors
    assert prediction_problems(prediction, duration_s) == []
    for region in prediction["result"]:
        value = region["value"]
        if region["type"] == "videorectangle":
            frames = [k["frame"] for k in value["sequence"]]
            assert all(isinstance(f, int) and 1 <= f <= value["framesCount"] for f in frames)
            assert frames == sorted(set(frames)) and value["sequence"][-1]["enabled"] is False
            for key in value["sequence"]:
                assert 0 <= key["x"] <= 100 and 0 <= key["y"] <= 100
                assert key["x"] + key["width"] <= 100 + 1e-9 and key["y"] + key["height"] <= 100 + 1e-9
        if region["type"] == "timelinelabels":
            (span,) = value["ranges"]
            assert isinstance(span["start"], int) and isinstance(span["end"], int) and span["start"] <= span["end"]
        if "start" in value and region["type"] != "timelinelabels":
            assert 0 <= value["start"] < value["end"] <= duration_s + 1e-6
    ids = [(r["id"], r["from_name"]) for r in prediction["result"]]
    assert len(ids) == len(set(ids))


def test_video_faces_config_gives_tracks_choices_and_timeline(face_analysis):
    config = (CONFIGS / "video_faces.xml").read_text()
    prediction = build_prediction(parse_config(config), {"video": "x.mp4", "fps": 25}, "emo-test", face=face_analysis)
    _check_prediction(config, prediction, face_analysis.media["duration_s"])
    by_type = {}
    for region in prediction["result"]:
        by_type.setdefault(region["type"], []).append(region)
    tracks = by_type["videorectangle"]
    assert len(tracks) == 2 and all(t["value"]["labels"] == ["Face"] for t in tracks)
    first = tracks[0]["value"]["sequence"]
    # 5 samples/s of 25 fps, then the last sample's box held to the last frame of the 2 s clip
    assert [k["frame"] for k in first] == [1 + 5 * i for i in range(10)] + [50]
    assert first[0]["enabled"] is True and first[-2]["enabled"] is True and first[-1]["enabled"] is False
    track_ids = {t["id"] for t in tracks}
    choices = by_type["choices"]
    assert {c["id"] for c in choices} == track_ids and all(1 <= len(c["value"]["choices"]) <= 3 for c in choices)
    assert by_type["timelinelabels"], "the tiny model's top family should hold over the clip"
    assert 0 < prediction["score"] <= 1 and prediction["model_version"] == "emo-test"


def test_frame_rate_is_the_one_label_studios_editor_uses(caplog):
    """Video.js afterCreate (LS 1.23.2): Number(attribute or task field); not a positive number -> 24;
    below 1 -> seconds per frame."""
    video = parse_config((CONFIGS / "video_faces.xml").read_text()).video()
    assert frame_rate_field(video) == "fps"
    assert frame_rate(video, {"fps": "30"}, 30.0) == 30.0 and caplog.text == ""
    assert editor_frame_rate(video, {}) == (24.0, "the task has no 'fps' field")
    assert editor_frame_rate(video, {"fps": ""})[0] == 24.0
    assert editor_frame_rate(video, {"fps": "fast"}) == (24.0, "frameRate 'fast' is not a number")
    assert editor_frame_rate(video, {"fps": 0.04}) == (25.0, None)  # seconds per frame
    assert editor_frame_rate(video, {"fps": 29.97003}) == (29.97003, None)
    with pytest.raises(PredictionError, match="'-25' must be a positive number"):
        editor_frame_rate(video, {"fps": "-25"})
    frame_rate(video, {}, 25.0)
    assert "task has no 'fps' field, so Label Studio's editor counts frames at its default of 24" in caplog.text
    caplog.clear()
    frame_rate(video, {"fps": 24}, 25.0)
    assert "frame rate is 24.000 but the file has 25.000" in caplog.text
    nested = parse_config('<View><Video name="v" value="$video" frameRate="$meta.fps"/><VideoRectangle name="b" '
                          'toName="v"/><Labels name="l" toName="v"><Label value="Joy"/></Labels></View>').video()
    assert editor_frame_rate(nested, {"meta": {"fps": 50}}) == (50.0, None)
    assert set_task_field({"video": "a.mp4"}, "meta.fps", 50) == {"video": "a.mp4", "meta": {"fps": 50}}
    literal = parse_config('<View><Video name="v" value="$video"/><VideoRectangle name="b" toName="v"/>'
                           '<Labels name="l" toName="v"><Label value="Joy"/></Labels></View>').video()
    assert frame_rate_field(literal) is None and editor_frame_rate(literal, {}) == (24.0, "the Video tag has no frameRate")


def _one_track_analysis(seen: list[bool], pps: float, duration_s: float, fps: float = 25.0) -> FaceAnalysis:
    """A face at the same box in the samples where ``seen`` is True, none elsewhere."""
    frames, faces = [], []
    for index, present in enumerate(seen):
        frame_index = int(index / pps * fps + 1e-9)  # the frame shown at the sample time
        time_s = frame_index / fps  # 0.48 s for the sample "at 0.5 s" of a 25 fps video
        frames.append(FrameRecord(index, frame_index, time_s, 640, 360))
        if present:
            faces.append(FaceObservation(index, frame_index, time_s, Box(64, 36, 128, 72), 0.9, 1,
                                         emotions=(), dimensions=()))
    return FaceAnalysis(media={"width": 640, "height": 360, "duration_s": duration_s, "average_fps": fps},
                        frames=tuple(frames), faces=tuple(faces), model=None, parameters=())


def _boxed_frames(track: dict) -> set[int]:
    """The frames Label Studio's editor shows the track's box on (isInLifespan: the closest keyframe
    at or before a frame decides; a disabled keyframe still shows its own frame)."""
    keys = track["value"]["sequence"]
    shown = set()
    for frame in range(1, track["value"]["framesCount"] + 1):
        before = [k for k in keys if k["frame"] <= frame]
        if before and (before[-1]["enabled"] or before[-1]["frame"] == frame):
            shown.add(frame)
    return shown


def test_a_face_seen_to_the_end_is_boxed_on_the_last_frame():
    face = _one_track_analysis([True] * 6, pps=1.0, duration_s=6.0)
    (track,) = video_rectangles(face, _rectangle_control(), FrameClock(25, 6.0), None)
    assert _boxed_frames(track) == set(range(1, 151))
    assert [(k["frame"], k["enabled"]) for k in track["value"]["sequence"]][-2:] == [(126, True), (150, False)]


def test_a_face_that_leaves_is_unboxed_from_the_first_sample_that_misses_it():
    face = _one_track_analysis([True, True, True, False, False, True], pps=1.0, duration_s=6.0)
    (track,) = video_rectangles(face, _rectangle_control(), FrameClock(25, 6.0), None)
    # samples at 0, 1, 2 s (frames 1, 26, 51) then gone at 3 s (frame 76), back at 5 s (frame 126)
    assert _boxed_frames(track) == set(range(1, 76)) | set(range(126, 151))
    timeline_extents = track_extents(face, list(face.faces))
    clock = FrameClock(25, 6.0)
    expected = set()
    for start_s, end_s in timeline_extents:  # the TimelineLabels rule gives the same frames
        expected |= set(range(clock.frame_at(start_s), clock.last_frame_before(end_s) + 1))
    assert _boxed_frames(track) == expected


def test_the_jitter_of_sampled_frame_times_never_breaks_a_track():
    face = _one_track_analysis([True] * 12, pps=2.0, duration_s=6.0)
    assert [round(f.time_s, 2) for f in face.frames[:3]] == [0.0, 0.48, 1.0]
    (track,) = video_rectangles(face, _rectangle_control(), FrameClock(25, 6.0), None)
    keys = track["value"]["sequence"]
    assert all(k["enabled"] for k in keys[:-1]) and keys[-1] == {**keys[-2], "frame": 150, "time": 5.96,
                                                                  "enabled": False}
    assert _boxed_frames(track) == set(range(1, 151))
    segments = smooth(track_extents(face, list(face.faces)), [0.1] * 12, SmoothingOptions(0.05))
    assert [(s.start_s, s.end_s) for s in segments] == [(0.0, 6.0)]


def _rectangle_control():
    plan = parse_config((CONFIGS / "video_faces.xml").read_text())
    return plan.video().control("videorectangle")


def test_audio_config_gives_segments_with_every_per_region_control(voice_analysis):
    config = (CONFIGS / "audio_voice.xml").read_text()
    prediction = build_prediction(parse_config(config), {"audio": "a.wav"}, "emo-test", voice=voice_analysis)
    _check_prediction(config, prediction, voice_analysis.media["duration_s"])
    segments = [r for r in prediction["result"] if r["type"] == "labels"]
    assert len(segments) == len(voice_analysis.segments) == 2
    for segment in segments:
        children = {r["type"]: r for r in prediction["result"] if r["id"] == segment["id"] and r is not segment}
        assert set(children) == {"choices", "taxonomy", "number"}  # no transcript was asked for
        assert len(children["taxonomy"]["value"]["taxonomy"][0]) == 2  # family -> emotion
        span = {k: segment["value"][k] for k in ("start", "end", "channel")}
        assert all({k: c["value"][k] for k in span} == span for c in children.values())
    valences = [r["value"]["number"] for r in prediction["result"] if r["from_name"] == "valence"]
    assert all(-3 <= v <= 3 for v in valences)


def test_face_and_voice_config_and_basic_preset(face_analysis, voice_analysis):
    config = (CONFIGS / "video_face_voice.xml").read_text()
    prediction = build_prediction(parse_config(config), {"video": "x.mp4"}, "v1", face=face_analysis,
                                  voice=voice_analysis)
    _check_prediction(config, prediction, max(face_analysis.media["duration_s"], voice_analysis.media["duration_s"]))
    assert {r["to_name"] for r in prediction["result"]} == {"video", "audio"}
    basic = (CONFIGS / "basic_emotions.xml").read_text()
    prediction = build_prediction(parse_config(basic), {"video": "x.mp4"}, "v1", face=face_analysis)
    _check_prediction(basic, prediction, face_analysis.media["duration_s"])
    labels = {r["value"]["labels"][0] for r in prediction["result"] if r["type"] == "videorectangle"}
    assert labels <= {"Happy", "Sad", "Angry", "Fearful", "Surprised", "Disgusted"}
    (overall,) = [r for r in prediction["result"] if r["from_name"] == "overall"]
    assert len(overall["value"]["choices"]) == 1


def test_threshold_default_is_one_and_a_half_times_chance():
    assert DEFAULT_THRESHOLD == pytest.approx(0.0375)


def test_our_checks_catch_what_the_sdk_validator_lets_through():
    prediction = {"result": [
        {"from_name": "t", "type": "timelinelabels", "value": {"ranges": [{"start": 1.5, "end": 30.2}]}},
        {"from_name": "b", "type": "videorectangle", "value": {"framesCount": 10, "sequence": [
            {"frame": 11, "x": 10, "y": 120, "width": 5, "height": 5}]}},
        {"from_name": "a", "type": "labels", "value": {"start": 2.0, "end": 1.0}}]}
    problems = prediction_problems(prediction, duration_s=5.0)
    assert any("1.5..30.2" in p for p in problems) and any("frame 11" in p for p in problems)
    assert any("lacks 'enabled'" in p for p in problems) and any("y 120" in p for p in problems)
    assert any("2.0..1.0" in p for p in problems)
