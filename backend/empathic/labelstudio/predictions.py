"""One Label Studio prediction for one task, from the task's cached or fresh analyses."""

from __future__ import annotations

import copy
import logging

from ..results import FaceAnalysis, VoiceAnalysis
from ..review_priority import review_priority
from .config import ObjectPlan, ProjectPlan
from .regions import (FrameClock, audio_segments, choose, fused_timeline_labels, mean_label_scores,
                      per_region_choices, timeline_labels, track_region_id, tracks_of, video_rectangles)

log = logging.getLogger(__name__)

# Label Studio's editor (Video.js afterCreate, the same in the 1.23.2 bundle) reads the Video tag's
# frameRate as Number(value or task field); anything that is not a positive number becomes 24, and a
# value below 1 is taken as seconds per frame. Frames here follow exactly the same rule, so that a
# prediction's frame numbers land on the times the editor shows them at.
LABEL_STUDIO_DEFAULT_FPS = 24.0


class PredictionError(ValueError):
    """A task cannot be turned into a prediction (bad frameRate field, missing analysis)."""


def frame_rate_field(video: ObjectPlan) -> str | None:
    """The task field the Video tag's frameRate reads (``frameRate="$fps"`` -> ``"fps"``), if any."""
    text = (video.frame_rate or "").strip()
    return text[1:] if text.startswith("$") and len(text) > 1 else None


def task_field(task_data: dict, path: str):
    """A task data value by a dotted path (``meta.fps``), as the editor's lookup reads it; None if absent."""
    value = task_data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def set_task_field(data: dict, field_path: str, value) -> dict:
    """A copy of task data with ``value`` at a dotted path (``meta.fps``), creating the dicts on the way."""
    updated = copy.deepcopy(data)
    *parents, leaf = field_path.split(".")
    node = updated
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[leaf] = value
    return updated


def editor_frame_rate(video: ObjectPlan, task_data: dict) -> tuple[float, str | None]:
    """(the frame rate Label Studio's editor uses for this task, why it fell back to 24 or None)."""
    field_name = frame_rate_field(video)
    raw = task_field(task_data, field_name) if field_name else video.frame_rate
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        reason = (f"the task has no {field_name!r} field" if field_name else "the Video tag has no frameRate")
        return LABEL_STUDIO_DEFAULT_FPS, reason
    try:
        fps = float(raw)
    except (TypeError, ValueError):
        return LABEL_STUDIO_DEFAULT_FPS, f"frameRate {raw!r} is not a number"
    if fps != fps or fps == 0:  # NaN or 0: the editor's "not a number"
        return LABEL_STUDIO_DEFAULT_FPS, f"frameRate {raw!r} is not a usable number"
    if fps < 0 or fps == float("inf"):
        raise PredictionError(f"frameRate {raw!r} must be a positive number (Label Studio's editor cannot "
                              f"play a video at it)")
    return (1.0 / fps if fps < 1 else fps), None


def frame_rate(video: ObjectPlan, task_data: dict, file_fps: float | None) -> float:
    """The Video tag's frame rate as the editor will use it. Frames then land at the right times
    whatever it is, but on the file's own frames only when it matches the file: a mismatch is logged."""
    fps, fallback = editor_frame_rate(video, task_data)
    if file_fps and abs(fps - file_fps) > 0.01 * file_fps:
        why = (f"{fallback}, so Label Studio's editor counts frames at its default of {fps:g} per second"
               if fallback else f"the Video tag's frame rate is {fps:.3f}")
        log.warning("%s but the file has %.3f; the prediction counts frames as the editor does (give the "
                    "Video tag the file's frame rate, or re-encode at a constant rate, for frame-exact regions)",
                    why, file_fps)
    return fps


def video_results(video: ObjectPlan, face: FaceAnalysis, task_data: dict, persons=None) -> list[dict]:
    clock = FrameClock(frame_rate(video, task_data, face.media.get("average_fps")), face.media["duration_s"])
    results: list[dict] = []
    rectangle = video.control("videorectangle")
    track_label = video.control("labels")
    if rectangle is not None:
        results += video_rectangles(face, rectangle, clock, track_label, persons)
        for control in video.controls:
            if control.type == "choices" and control.per_region:
                for track_id, observations in tracks_of(face).items():
                    results.append(per_region_choices(control, track_region_id(track_id), observations))
    timeline = video.control("timelinelabels")
    if timeline is not None and timeline.settings.source == "fused" and persons is not None:
        results += fused_timeline_labels(persons, timeline, clock)
    elif timeline is not None:
        if timeline.settings.source == "fused":
            log.warning("%s asks for fused emotions (model_source=\"fused\"), which needs the config's Video "
                        "and Audio to show the same media and PERSONS=auto: filled with the faces' emotions",
                        timeline.name)
        results += timeline_labels(face, timeline, clock)
    for control in video.controls:
        if control.type == "choices" and not control.per_region and face.faces:
            results.append(_clip_choices(control, mean_label_scores(control.mapping, list(face.faces))))
    return results


def audio_results(audio: ObjectPlan, voice: VoiceAnalysis, persons=None) -> list[dict]:
    results = audio_segments(voice, audio, persons)
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
                     voice: VoiceAnalysis | None = None, persons=None, evidence=None) -> dict:
    """``{"model_version", "score", "result"}``; the score is the review priority
    (``review_priority``: low where the suggestions most need a human). ``persons`` (a
    PersonsAnalysis) names the person of each face track and voice segment and fills a
    TimelineLabels with ``model_source="fused"``; ``evidence`` gives the voice quality."""
    results: list[dict] = []
    video, audio = plan.video(), plan.audio()
    if video is not None:
        if face is None:
            raise PredictionError("the config has a Video to fill but no face analysis was made")
        results += video_results(video, face, task_data, persons)
    if audio is not None:
        if voice is None:
            raise PredictionError("the config has an Audio to fill but no voice analysis was made")
        results += audio_results(audio, voice, persons)
    score = review_priority(face if video is not None else None, voice if audio is not None else None,
                            persons, evidence)
    return {"model_version": model_version, "score": score, "result": results}


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
