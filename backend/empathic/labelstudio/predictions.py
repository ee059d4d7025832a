"""One Label Studio prediction for one task, from the task's cached or fresh analyses."""

from __future__ import annotations

import logging

from ..results import FaceAnalysis, VoiceAnalysis
from .config import ObjectPlan, ProjectPlan
from .regions import (FrameClock, audio_segments, choose, mean_label_scores, per_region_choices, timeline_labels,
                      track_region_id, tracks_of, video_rectangles)

log = logging.getLogger(__name__)

LABEL_STUDIO_DEFAULT_FPS = 24.0  # the Video tag's frameRate when the config gives none


class PredictionError(ValueError):
    """A task cannot be turned into a prediction (bad frameRate field, missing analysis)."""


def frame_rate(video: ObjectPlan, task_data: dict, file_fps: float | None) -> float:
    """The Video tag's frame rate: a literal, a ``$field`` of the task, or Label Studio's default."""
    text = video.frame_rate
    if text and text.startswith("$"):
        raw = task_data.get(text[1:])
        if raw is None:
            raise PredictionError(f"the Video tag's frameRate reads task field {text[1:]!r}, which this "
                                  f"task does not have")
    else:
        raw = text if text else LABEL_STUDIO_DEFAULT_FPS
    try:
        fps = float(raw)
    except (TypeError, ValueError):
        raise PredictionError(f"frameRate {raw!r} is not a number") from None
    if not fps > 0:
        raise PredictionError(f"frameRate must be > 0, got {fps}")
    if file_fps and abs(fps - file_fps) > 0.01 * file_fps:
        log.warning("the Video tag's frame rate %.3f differs from the file's %.3f; frames follow the tag, "
                    "as Label Studio's player does (set frameRate to match, or re-encode at constant rate)",
                    fps, file_fps)
    return fps


def video_results(video: ObjectPlan, face: FaceAnalysis, task_data: dict, pps: float) -> list[dict]:
    clock = FrameClock(frame_rate(video, task_data, face.media.get("average_fps")), face.media["duration_s"])
    results: list[dict] = []
    rectangle = video.control("videorectangle")
    track_label = video.control("labels")
    if rectangle is not None:
        results += video_rectangles(face, rectangle, clock, track_label)
        for control in video.controls:
            if control.type == "choices" and control.per_region:
                for track_id, observations in tracks_of(face).items():
                    results.append(per_region_choices(control, track_region_id(track_id), observations))
    timeline = video.control("timelinelabels")
    if timeline is not None:
        results += timeline_labels(face, timeline, clock, pps)
    for control in video.controls:
        if control.type == "choices" and not control.per_region and face.faces:
            results.append(_clip_choices(control, mean_label_scores(control.mapping, list(face.faces))))
    return results


def audio_results(audio: ObjectPlan, voice: VoiceAnalysis) -> list[dict]:
    results = audio_segments(voice, audio)
    for control in audio.controls:
        if control.type == "choices" and not control.per_region and voice.segments:
            results.append(_clip_choices(control, mean_label_scores(control.mapping, list(voice.segments))))
    return results


def _clip_choices(control, scored) -> dict:
    """A choice for the whole clip (a Choices that is not per region): the mean over all of it."""
    chosen = choose(scored, control)
    return {"id": f"clip-{control.name}", "from_name": control.name, "to_name": control.to_name,
            "type": "choices", "origin": "prediction", "score": round(chosen[0][1], 6),
            "value": {"choices": [label for label, _ in chosen]}}


def build_prediction(plan: ProjectPlan, task_data: dict, model_version: str, face: FaceAnalysis | None = None,
                     voice: VoiceAnalysis | None = None, face_pps: float = 1.0) -> dict:
    """``{"model_version", "score", "result"}``; the score is the mean of the region scores."""
    results: list[dict] = []
    video, audio = plan.video(), plan.audio()
    if video is not None:
        if face is None:
            raise PredictionError("the config has a Video to fill but no face analysis was made")
        results += video_results(video, face, task_data, face_pps)
    if audio is not None:
        if voice is None:
            raise PredictionError("the config has an Audio to fill but no voice analysis was made")
        results += audio_results(audio, voice)
    scores = [r["score"] for r in results if "score" in r]
    return {"model_version": model_version, "score": round(sum(scores) / len(scores), 6) if scores else 0.0,
            "result": results}


def prediction_problems(prediction: dict, duration_s: float | None = None) -> list[str]:
    """What Label Studio's validator does not catch but its editor trips over: fractional or
    out-of-range frames (a float TimelineLabels range breaks the whole labeling view), geometry
    outside 0-100, keyframes without ``enabled``, spans that are empty or run past the media."""
    problems = []
    for index, region in enumerate(prediction.get("result", [])):
        value = region.get("value", {})
        where = f"region {index} ({region.get('from_name')})"
        if region.get("type") == "videorectangle":
            count = value.get("framesCount")
            for key in value.get("sequence", []):
                if not isinstance(key.get("frame"), int) or not 1 <= key["frame"] <= (count or key["frame"]):
                    problems.append(f"{where}: frame {key.get('frame')!r} is not an integer in 1..{count}")
                if "enabled" not in key:
                    problems.append(f"{where}: a keyframe lacks 'enabled'")
                for name in ("x", "y", "width", "height"):
                    if not 0 <= key.get(name, -1) <= 100:
                        problems.append(f"{where}: {name} {key.get(name)!r} is outside 0-100")
        elif region.get("type") == "timelinelabels":
            for span in value.get("ranges", []):
                start, end = span.get("start"), span.get("end")
                if not (isinstance(start, int) and isinstance(end, int) and 1 <= start <= end):
                    problems.append(f"{where}: range {start!r}..{end!r} is not 1 <= start <= end in whole frames")
        elif "start" in value and "end" in value:
            limit = duration_s + 1e-6 if duration_s is not None else float("inf")
            if not 0 <= value["start"] < value["end"] <= limit:
                problems.append(f"{where}: span {value['start']}..{value['end']} is not 0 <= start < end <= {duration_s}")
    return problems
