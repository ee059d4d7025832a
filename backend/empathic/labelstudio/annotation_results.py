"""Label Studio result lists (an annotation's or a prediction's ``result``) -> ``RegionSet``.

Regions are grouped by ``id``, as Label Studio groups them: a per-region control's result (a
Choices, TextArea, Number or Taxonomy with ``perRegion``) shares the id of the region it describes.
TimelineLabels ranges are 1-based inclusive frames at the editor's frame rate; they become seconds
from the start of their first frame to the end of their last.
"""

from __future__ import annotations

from ..review.regions import Keyframe, RegionSet, Span, Track

GEOMETRY_TYPES = ("videorectangle", "labels", "timelinelabels")


class ResultError(ValueError):
    """A result list that cannot be read (names the region and what is wrong)."""


def _labels(value: dict, key: str) -> tuple[str, ...]:
    labels = value.get(key) or ()
    return tuple(str(label) for label in labels)


def _meta_text(region: dict) -> str | None:
    text = (region.get("meta") or {}).get("text")
    if isinstance(text, list):
        text = " ".join(str(t) for t in text)
    return text or None


def _keyframes(region: dict) -> tuple[Keyframe, ...]:
    keys = []
    for key in region["value"].get("sequence") or []:
        try:
            keys.append(Keyframe(frame=int(key["frame"]), x=float(key["x"]), y=float(key["y"]),
                                 width=float(key["width"]), height=float(key["height"]),
                                 enabled=bool(key.get("enabled", True))))
        except (KeyError, TypeError, ValueError) as exc:
            raise ResultError(f"region {region.get('id')!r} ({region.get('from_name')}): a keyframe lacks "
                              f"a number for {exc}") from None
    return tuple(sorted(keys, key=lambda k: k.frame))


def _child_labels(child: dict) -> tuple[str, ...]:
    value = child.get("value", {})
    if child.get("type") == "taxonomy":  # root -> leaf paths: the leaf is the label
        return tuple(str(path[-1]) for path in value.get("taxonomy") or [] if path)
    return _labels(value, "choices")


def region_set(result: list[dict], fps: float | None = None, *, annotator: str | None = None,
               source_id: int | None = None, duration_s: float | None = None) -> RegionSet:
    """``fps`` is the editor's frame rate for the task's video (needed for TimelineLabels)."""
    if not isinstance(result, list):
        raise ResultError(f"a result must be a list of regions, got {type(result).__name__}")
    by_id: dict[str, list[dict]] = {}
    for index, item in enumerate(result):
        if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
            raise ResultError(f"result item {index} is not a region with a value")
        by_id.setdefault(str(item.get("id", f"#{index}")), []).append(item)
    tracks, spans, clip = [], [], []
    frames_count = None
    for region_id, items in by_id.items():
        main = next((i for i in items if i.get("type") in GEOMETRY_TYPES
                     and (i.get("type") != "labels" or "start" in i["value"])), None)
        children = [i for i in items if i is not main]
        if main is None:  # choices for the whole clip
            clip += [(str(i.get("from_name")), _child_labels(i)) for i in children if i.get("type") in
                     ("choices", "taxonomy")]
            continue
        choices = tuple((str(c.get("from_name")), _child_labels(c)) for c in children
                        if c.get("type") in ("choices", "taxonomy"))
        value, control = main["value"], str(main.get("from_name"))
        common = {"region_id": region_id, "control": control, "origin": main.get("origin"),
                  "meta_text": _meta_text(main)}
        if main["type"] == "videorectangle":
            frames_count = value.get("framesCount") or frames_count
            duration_s = duration_s or value.get("duration") or None
            tracks.append(Track(keyframes=_keyframes(main), labels=_labels(value, "labels"), choices=choices,
                                **common))
        elif main["type"] == "timelinelabels":
            if not fps:
                raise ResultError(f"region {region_id!r} ({control}): timeline ranges are in frames and the "
                                  f"task's frame rate is unknown")
            for span in value.get("ranges") or []:
                start, end = int(span["start"]), int(span["end"])
                spans.append(Span(start_s=(start - 1) / fps, end_s=end / fps,
                                  labels=_labels(value, "timelinelabels"), kind="timeline", choices=choices,
                                  frames=(start, end), **common))
        else:
            text = next((" ".join(c["value"].get("text") or []) for c in children if c.get("type") == "textarea"),
                        None)
            numbers = tuple((str(c.get("from_name")), float(c["value"]["number"])) for c in children
                            if c.get("type") == "number" and c["value"].get("number") is not None)
            spans.append(Span(start_s=float(value["start"]), end_s=float(value["end"]),
                              labels=_labels(value, "labels"), kind="audio", choices=choices, numbers=numbers,
                              text=text, **common))
    return RegionSet(tracks=tuple(tracks), spans=tuple(sorted(spans, key=lambda s: (s.start_s, s.control))),
                     clip_choices=tuple(clip), fps=fps, frames_count=int(frames_count) if frames_count else None,
                     duration_s=float(duration_s) if duration_s else None, annotator=annotator,
                     source_id=source_id)
