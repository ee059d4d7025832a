"""Analyses -> Label Studio prediction results, one converter per tag.

Time conversion lives here and only here: Label Studio counts video frames from 1 with the frame
rate of its Video tag, so a time t falls in frame floor(t * fps) + 1.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ..results import FaceAnalysis, FaceObservation, VoiceAnalysis, VoiceSegment
from ..taxonomy import EMOTION_IDS
from ..timeline import SmoothingOptions, smooth, track_extents
from .config import ControlPlan, ObjectPlan
from .mapping import LabelMapping

_EPS = 1e-6


@dataclass(frozen=True)
class FrameClock:
    """1-based frame numbers at the Video tag's frame rate."""

    fps: float
    duration_s: float

    def __post_init__(self):
        if not self.fps > 0:
            raise ValueError(f"frame rate must be > 0, got {self.fps}")

    @property
    def frames_count(self) -> int:
        return max(1, int(round(self.duration_s * self.fps)))

    def frame_at(self, time_s: float) -> int:
        """The frame displayed at ``time_s``."""
        return min(self.frames_count, max(1, int(math.floor(time_s * self.fps + _EPS)) + 1))

    def last_frame_before(self, end_s: float) -> int:
        """The last frame displayed before ``end_s`` (an exclusive end time)."""
        return min(self.frames_count, max(1, int(math.ceil(end_s * self.fps - _EPS))))


def _pct(value: float, size: float) -> float:
    return round(min(100.0, max(0.0, 100.0 * value / size)), 4)


def _shares(observation: FaceObservation | VoiceSegment) -> dict[str, float]:
    return {e.emotion_id: e.share for e in observation.emotions}


def mean_label_scores(mapping: LabelMapping, items) -> list[tuple[str, float]]:
    """Labels best first by their mean score over several faces or segments."""
    totals: dict[str, float] = defaultdict(float)
    for item in items:
        for label, score in mapping.scores(_shares(item)):
            totals[label] += score
    count = max(1, len(items))
    order = [t.label for t in mapping.targets]
    return sorted(((label, totals[label] / count) for label in order), key=lambda item: -item[1])


def choose(scored: list[tuple[str, float]], control: ControlPlan) -> list[tuple[str, float]]:
    """The best label always (an annotator corrects it), then others above the threshold, top_k in all."""
    chosen = scored[:1] + [s for s in scored[1:] if s[1] >= control.settings.threshold]
    return chosen[:control.settings.top_k]


def tracks_of(face: FaceAnalysis) -> dict[int, list[FaceObservation]]:
    tracks: dict[int, list[FaceObservation]] = defaultdict(list)
    for observation in face.faces:
        tracks[observation.track_id].append(observation)
    return dict(sorted(tracks.items()))


def track_region_id(track_id: int) -> str:
    return f"face{track_id}"


def video_rectangles(face: FaceAnalysis, rectangle: ControlPlan, clock: FrameClock,
                     label_control: ControlPlan | None, persons=None) -> list[dict]:
    """One track per face. A face seen at a sample stays boxed for the time that sample stands for
    (``track_extents``: until the next sample, or the end of the video), the same rule as the
    track's TimelineLabels. Label Studio shows a keyframe with ``enabled: false`` on its own
    frame and hides the box after it, so each stretch of presence ends with a disabled keyframe on
    its last frame."""
    regions = []
    frame_w, frame_h = float(face.media["width"]), float(face.media["height"])
    end_s = float(face.media["duration_s"])
    for track_id, observations in tracks_of(face).items():
        extents = track_extents(face, observations)
        keyframes: dict[int, dict] = {}  # by frame: a later sample in the same frame replaces it
        for i, obs in enumerate(observations):
            box = _box_percent(obs, frame_w, frame_h)
            frame = clock.frame_at(obs.time_s)
            continues = bool(i + 1 < len(observations) and extents[i, 1] >= extents[i + 1, 0] - _EPS)
            last = max(frame, clock.last_frame_before(float(extents[i, 1])))
            keyframes[frame] = _keyframe(frame, clock, box, enabled=continues or last > frame)
            if not continues and last > frame:
                keyframes[last] = _keyframe(last, clock, box, enabled=False)
        value = {"framesCount": clock.frames_count, "duration": round(end_s, 6),
                 "sequence": [keyframes[f] for f in sorted(keyframes)]}
        if label_control is not None:
            value["labels"] = [_track_label(label_control, observations)]
        region = {"id": track_region_id(track_id), "from_name": rectangle.name,
                  "to_name": rectangle.to_name, "type": "videorectangle", "origin": "prediction",
                  "score": round(float(np.mean([o.detection_confidence for o in observations])), 4),
                  "value": value}
        person = persons.person_of_track(track_id) if persons is not None else None
        if person is not None:
            region["meta"] = {"text": [person_label(person)]}
        regions.append(region)
    return regions


def person_label(person) -> str:
    """How a region names its person: PERSON_1, with the diarized speaker it speaks as, or off screen."""
    if person.track_id is None:
        return f"{person.person_id} (off screen{', ' + person.speaker_id if person.speaker_id else ''})"
    return f"{person.person_id} (speaks as {person.speaker_id})" if person.speaker_id else person.person_id


def _box_percent(obs: FaceObservation, frame_w: float, frame_h: float) -> dict:
    x, y = _pct(obs.box.x, frame_w), _pct(obs.box.y, frame_h)
    return {"x": x, "y": y, "width": round(min(_pct(obs.box.w, frame_w), 100.0 - x), 4),
            "height": round(min(_pct(obs.box.h, frame_h), 100.0 - y), 4)}


def _keyframe(frame: int, clock: FrameClock, box: dict, enabled: bool) -> dict:
    return {"frame": frame, "time": round((frame - 1) / clock.fps, 6), **box, "rotation": 0, "enabled": enabled}


def _track_label(label_control: ControlPlan, observations: list[FaceObservation]) -> str:
    """The track's own label: its dominant emotion if the Labels are emotions, else the first
    label that is not one (e.g. "Face")."""
    mapping = label_control.mapping
    if mapping is not None and mapping.targets:
        return mean_label_scores(mapping, observations)[0][0]
    return label_control.labels[0]


def per_region_choices(control: ControlPlan, region_id: str, items, geometry: dict | None = None) -> dict:
    chosen = choose(mean_label_scores(control.mapping, items), control)
    return {"id": region_id, "from_name": control.name, "to_name": control.to_name, "type": "choices",
            "origin": "prediction", "score": round(chosen[0][1], 6),
            "value": {**(geometry or {}), "choices": [label for label, _ in chosen]}}


def _timeline_regions(control: ControlPlan, clock: FrameClock, id_prefix: str, extents: np.ndarray,
                      shares: list[dict[str, float]], meta: dict | None = None) -> list[dict]:
    """Per label: the stretches where the label's score over ``shares`` (one per row of ``extents``)
    stays on (hysteresis, minimum duration), as 1-based inclusive integer frame ranges, one range
    per region."""
    smoothing = SmoothingOptions(on_threshold=control.settings.threshold)
    per_label = [dict(control.mapping.scores(row)) for row in shares]
    regions = []
    for target in control.mapping.targets:
        scores = np.array([row[target.label] for row in per_label])
        for n, segment in enumerate(smooth(extents, scores, smoothing)):
            start = clock.frame_at(segment.start_s)
            end = max(start, clock.last_frame_before(segment.end_s))
            regions.append({
                "id": f"{id_prefix}-{target.label}-{n + 1}".replace(" ", "_"),
                "from_name": control.name, "to_name": control.to_name, "type": "timelinelabels",
                "origin": "prediction", "score": round(segment.mean_score, 6), **({"meta": meta} if meta else {}),
                "value": {"ranges": [{"start": start, "end": end}], "timelinelabels": [target.label]}})
    return regions


def timeline_labels(face: FaceAnalysis, control: ControlPlan, clock: FrameClock) -> list[dict]:
    """Per face track: ``_timeline_regions`` over its samples."""
    regions = []
    for track_id, observations in tracks_of(face).items():
        regions += _timeline_regions(control, clock, track_region_id(track_id), track_extents(face, observations),
                                     [_shares(o) for o in observations])
    return regions


def fused_timeline_labels(persons, control: ControlPlan, clock: FrameClock) -> list[dict]:
    """Per person: ``_timeline_regions`` over the fusion grid's cells, from the fused face and voice
    shares; each region names its person."""
    regions = []
    for person in persons.persons:
        cells = [c for c in persons.timeline if c.person_id == person.person_id]
        if cells:
            regions += _timeline_regions(control, clock, person.person_id,
                                         np.array([[c.start_s, c.end_s] for c in cells]),
                                         [dict(zip(EMOTION_IDS, c.fused.tolist())) for c in cells],
                                         meta={"text": [person_label(person)]})
    return regions


def segment_region_id(segment: VoiceSegment) -> str:
    return f"voice{segment.segment_index + 1}"


def audio_segments(voice: VoiceAnalysis, obj: ObjectPlan, persons=None) -> list[dict]:
    """A Labels region per voice segment (seconds), and every per-region control of the Audio; with
    ``persons``, each segment names the person whose voice it is."""
    labels = next(c for c in obj.controls if c.type == "labels" and not c.per_region)
    regions = []
    for segment in voice.segments:
        region_id = segment_region_id(segment)
        span = {"start": round(segment.start_s, 6), "end": round(segment.end_s, 6), "channel": 0}
        chosen = choose(labels.mapping.scores(_shares(segment)), labels)
        region = {"id": region_id, "from_name": labels.name, "to_name": labels.to_name, "type": "labels",
                  "origin": "prediction", "score": round(chosen[0][1], 6),
                  "value": {**span, "labels": [label for label, _ in chosen]}}
        person_id = persons.segment_person.get(segment.segment_index) if persons is not None else None
        if person_id is not None:
            region["meta"] = {"text": [person_label(persons.person(person_id))]}
        elif segment.speaker is not None:
            region["meta"] = {"text": [segment.speaker]}
        regions.append(region)
        for control in obj.controls:
            if not control.per_region:
                continue
            child = _per_region_child(control, region_id, segment, span)
            if child is not None:
                regions.append(child)
    return regions


def _per_region_child(control: ControlPlan, region_id: str, segment: VoiceSegment, span: dict) -> dict | None:
    base = {"id": region_id, "from_name": control.name, "to_name": control.to_name, "origin": "prediction"}
    if control.type == "choices":
        return per_region_choices(control, region_id, [segment], span)
    if control.type == "taxonomy":
        paths = taxonomy_paths(control, segment)
        return {**base, "type": "taxonomy", "value": {**span, "taxonomy": [list(p) for p in paths]}} if paths else None
    if control.type == "number":
        # An attribute head's value, or a Voice-Plus quality expert's (matched by name alike).
        value = dict(segment.attributes + segment.audio_quality).get(control.attribute)
        if value is None:
            return None
        low, high = control.number_range
        value = min(high, value) if high is not None else value
        value = max(low, value) if low is not None else value
        return {**base, "type": "number", "value": {**span, "number": round(float(value), 4)}}
    if control.type == "textarea":
        if not segment.transcription:
            return None
        return {**base, "type": "textarea", "value": {**span, "text": [segment.transcription]}}
    return None


def taxonomy_paths(control: ControlPlan, segment: VoiceSegment) -> list[tuple[str, ...]]:
    """The deepest config path whose node maps to each chosen label (e.g. family -> emotion)."""
    # Only leaves compete: a family node always scores at least as high as its own emotions.
    leaves = {p[-1] for p in control.taxonomy_paths
              if not any(len(q) > len(p) and q[:len(p)] == p for q in control.taxonomy_paths)}
    mapping = LabelMapping(control.name, tuple(t for t in control.mapping.targets if t.label in leaves), ())
    if not mapping.targets:
        return []
    chosen = [label for label, _ in choose(mapping.scores(_shares(segment)), control)]
    paths = []
    for label in chosen:
        candidates = [p for p in control.taxonomy_paths if p[-1] == label]
        if candidates:
            paths.append(max(candidates, key=len))
    return paths
