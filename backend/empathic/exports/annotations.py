"""What annotators made of the suggestions (a ``RegionSet``), in the formats of the pre-annotations.

- COCO: one image per frame on which a face track shows a box, one annotation per track and frame,
  boxes placed by Label Studio's own rule (``review.regions.track_boxes``: linear between keyframes,
  held after the last one, hidden after a disabled keyframe) and turned from percent into pixels
  (rounded to 0.01 px). ``track_id`` is N for a region named ``faceN`` (the backend's suggestions)
  and a number past the largest of those for regions annotators drew. ``frame_number`` is 0-based
  and ``timestamp`` is its start, as in the analysis' COCO.
- WebVTT: one cue per audio segment: the speaker (the region's meta text) as the voice, the
  transcript, then ``LABELS:`` and one line per per-region control.
- JSON: every track (keyframes and labels), segment, timeline range and clip choice.
- ELAN: a tier per control (overlapping regions spill onto numbered tiers), a tier per face track
  with its labels over the stretches it is shown, and the transcripts on their own tier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..review.regions import RegionSet, Span, Track, track_boxes
from .coco import FACE_CATEGORY_ID, frame_file_name
from .eaf import eaf_text, link_media, milliseconds
from .webvtt import escape, timestamp

DOCUMENT_VERSION = 1


@dataclass(frozen=True)
class MediaFacts:
    """What a box in percent and a frame number need to become pixels and seconds."""

    file_name: str
    width: int | None = None
    height: int | None = None
    fps: float | None = None  # the editor's frame rate
    frames_count: int | None = None
    duration_s: float | None = None
    path: str | None = None  # the local copy, linked from the ELAN file


def track_numbers(tracks: tuple[Track, ...]) -> dict[str, int]:
    """``faceN`` keeps N; other regions get numbers past the largest N, in order."""
    numbers = {}
    for track in tracks:
        found = re.fullmatch(r"face(\d+)", track.region_id)
        if found:
            numbers[track.region_id] = int(found.group(1))
    following = max(numbers.values(), default=0)
    for track in tracks:
        if track.region_id not in numbers:
            following += 1
            numbers[track.region_id] = following
    return numbers


def _frames_count(regions: RegionSet, media: MediaFacts) -> int:
    last_key = max((k.frame for t in regions.tracks for k in t.keyframes), default=1)
    return int(regions.frames_count or media.frames_count or last_key)


def _label_dict(region: Track | Span) -> dict[str, list[str]]:
    return {control: list(labels) for control, labels in region.all_labels()}


def to_coco(regions: RegionSet, media: MediaFacts) -> dict:
    if regions.tracks and not (media.width and media.height and media.fps):
        raise ValueError(f"{media.file_name}: boxes need the video's width, height and frame rate")
    frames_count = _frames_count(regions, media)
    numbers = track_numbers(regions.tracks)
    boxes = {t.region_id: track_boxes(t, frames_count) for t in regions.tracks}
    shown_frames = sorted({int(f) for b in boxes.values() for f in np.nonzero(~np.isnan(b[:, 0]))[0]})
    images = [{"id": f + 1, "file_name": frame_file_name(media.file_name, f), "width": media.width,
               "height": media.height, "frame_number": f, "timestamp": round(f / media.fps, 6)}
              for f in shown_frames]
    annotations = []
    scale = np.array([media.width, media.height, media.width, media.height], dtype=np.float64) / 100.0
    for track in sorted(regions.tracks, key=lambda t: numbers[t.region_id]):
        keyframes = {k.frame for k in track.keyframes}
        pixels = np.round(boxes[track.region_id] * scale, 2)
        labels = _label_dict(track)
        for f in np.nonzero(~np.isnan(pixels[:, 0]))[0]:
            x, y, w, h = (float(v) for v in pixels[f])
            annotations.append({
                "id": len(annotations) + 1, "image_id": int(f) + 1, "category_id": FACE_CATEGORY_ID,
                "bbox": [x, y, w, h], "area": round(w * h, 2), "iscrowd": 0,
                "timestamp": round(f / media.fps, 6), "frame_number": int(f),
                "track_id": numbers[track.region_id], "region_id": track.region_id,
                "attributes": {"labels": labels, "keyframe": int(f) + 1 in keyframes, "origin": track.origin}})
    return {"info": {"description": f"Annotations of {media.file_name}", "annotator": regions.annotator,
                     "annotation_id": regions.source_id, "frame_rate": media.fps},
            "licenses": [], "images": images, "annotations": annotations,
            "categories": [{"id": FACE_CATEGORY_ID, "name": "face", "supercategory": "person"}]}


def to_webvtt(regions: RegionSet, media: MediaFacts) -> str:
    blocks = ["WEBVTT", f"NOTE\nAnnotations of {media.file_name}"
                        + (f" by {regions.annotator}" if regions.annotator else "")]
    for number, span in enumerate(regions.audio(), start=1):
        lines = []
        if span.text:
            lines.append(escape(" ".join(span.text.split())))
        lines.append("LABELS: " + ", ".join(escape(label) for label in span.labels))
        lines += [f"{escape(control)}: " + ", ".join(escape(label) for label in labels)
                  for control, labels in span.choices]
        lines += [f"{escape(control)}: {value:g}" for control, value in span.numbers]
        if span.meta_text:
            lines[0] = f"<v {escape(span.meta_text).replace(chr(10), ' ')}>{lines[0]}"
        blocks.append(f"{number}\n{timestamp(span.start_s)} --> {timestamp(span.end_s)}\n" + "\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _span_dict(span: Span) -> dict:
    document = {"region_id": span.region_id, "control": span.control, "start_time": round(span.start_s, 6),
                "end_time": round(span.end_s, 6), "labels": _label_dict(span), "origin": span.origin}
    if span.frames:
        document["frames"] = list(span.frames)
    if span.numbers:
        document["numbers"] = dict(span.numbers)
    if span.text is not None:
        document["transcript"] = span.text
    if span.meta_text:
        document["speaker"] = span.meta_text
    return document


def to_document(regions: RegionSet, media: MediaFacts, task_id: int | None = None) -> dict:
    numbers = track_numbers(regions.tracks)
    tracks = [{"track_id": numbers[t.region_id], "region_id": t.region_id, "labels": _label_dict(t),
               "origin": t.origin, **({"person": t.meta_text} if t.meta_text else {}),
               "keyframes": [{"frame": k.frame, "time": round((k.frame - 1) / media.fps, 6) if media.fps else None,
                              "x": k.x, "y": k.y, "width": k.width, "height": k.height, "enabled": k.enabled}
                             for k in t.keyframes]} for t in regions.tracks]
    return {"version": DOCUMENT_VERSION, "task_id": task_id, "annotation_id": regions.source_id,
            "annotator": regions.annotator,
            "media": {"file_name": media.file_name, "width": media.width, "height": media.height,
                      "frame_rate": media.fps, "duration_s": media.duration_s},
            "tracks": tracks, "segments": [_span_dict(s) for s in regions.audio()],
            "timeline": [_span_dict(s) for s in regions.timeline()],
            "clip": {control: list(labels) for control, labels in regions.clip_choices}}


def _lanes(items: list[tuple[int, int, str]]) -> list[list[tuple[int, int, str]]]:
    """Overlapping annotations on separate lanes (an ELAN tier holds no overlaps)."""
    lanes: list[list[tuple[int, int, str]]] = []
    for item in sorted(items):
        lane = next((lane for lane in lanes if lane[-1][1] <= item[0]), None)
        if lane is None:
            lanes.append([item])
        else:
            lane.append(item)
    return lanes


def _stretches(shown: np.ndarray) -> list[tuple[int, int]]:
    """0-based [first, last] frame runs where ``shown`` is true."""
    edges = np.diff(np.concatenate([[0], shown.astype(np.int8), [0]]))
    return list(zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0] - 1))


def to_eaf(regions: RegionSet, media: MediaFacts):
    from pympi.Elan import Eaf

    eaf = Eaf(author="empathic")
    link_media(eaf, media.path)
    tiers: dict[str, list[tuple[int, int, str]]] = {}
    for span in regions.spans:
        text = ", ".join(label for _, labels in span.all_labels() for label in labels)
        start_ms, end_ms = milliseconds(span.start_s), milliseconds(span.end_s)
        tiers.setdefault(span.control, []).append((start_ms, end_ms, text))
        if span.text:
            tiers.setdefault(f"{span.control} transcript", []).append((start_ms, end_ms, span.text))
    if regions.tracks and media.fps:
        frames_count = _frames_count(regions, media)
        numbers = track_numbers(regions.tracks)
        for track in regions.tracks:
            text = ", ".join(label for _, labels in track.all_labels() for label in labels) or "face"
            shown = ~np.isnan(track_boxes(track, frames_count)[:, 0])
            tiers[f"face {numbers[track.region_id]}"] = [
                (milliseconds(first / media.fps), milliseconds((last + 1) / media.fps), text)
                for first, last in _stretches(shown)]
    for name, items in tiers.items():
        for number, lane in enumerate(_lanes([i for i in items if i[1] > i[0]]), start=1):
            tier = name if number == 1 else f"{name} ({number})"
            eaf.add_tier(tier)
            for start_ms, end_ms, text in lane:
                eaf.add_annotation(tier, start_ms, end_ms, text)
    eaf.remove_tier("default")
    return eaf


def to_eaf_text(regions: RegionSet, media: MediaFacts) -> str:
    return eaf_text(to_eaf(regions, media))
