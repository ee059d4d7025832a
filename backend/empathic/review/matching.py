"""Which annotated region answers which suggested one, and what the annotator did to each
suggestion: kept it, edited it (moved and/or relabelled), deleted it, or added a region of their own.

Face tracks pair up by box overlap over time: the mean intersection-over-union of the two boxes
over every frame where either is shown (0 where only one is). Spans pair up by time overlap
(intersection over union of the two intervals), per control. Pairs are chosen by the Hungarian
assignment (largest total overlap) and kept when their overlap reaches the options' minimum.
A pair counts as kept when nothing measurable changed: boxes within ``box_tolerance`` percentage
points on every frame and the same lifespan, span ends within ``time_tolerance_s``, the same labels.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from .regions import RegionSet, Span, Track, track_boxes


@dataclass(frozen=True)
class MatchOptions:
    min_track_overlap: float = 0.3
    min_span_overlap: float = 0.5
    box_tolerance: float = 0.5  # percentage points of the frame
    time_tolerance_s: float = 0.05


@dataclass(frozen=True)
class RegionPair:
    """A suggested region and the annotated one that answers it (either may be None)."""

    predicted: Track | Span | None
    annotated: Track | Span | None
    overlap: float = 0.0
    moved: bool = False
    relabelled: bool = False

    @property
    def outcome(self) -> str:
        if self.annotated is None:
            return "deleted"
        if self.predicted is None:
            return "added"
        return "kept" if not (self.moved or self.relabelled) else "edited"

    @property
    def label(self) -> str:
        """The region's main label: the suggested one's, or the added one's."""
        region = self.predicted if self.predicted is not None else self.annotated
        for _, labels in region.all_labels():
            if labels:
                return labels[0]
        return "(no label)"


@dataclass(frozen=True)
class Outcomes:
    kept: int = 0
    edited: int = 0
    moved: int = 0
    relabelled: int = 0
    deleted: int = 0
    added: int = 0
    per_label: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()  # label -> outcome -> count

    @property
    def suggested(self) -> int:
        return self.kept + self.edited + self.deleted

    def to_dict(self) -> dict:
        return {"suggested": self.suggested, "kept": self.kept, "edited": self.edited, "moved": self.moved,
                "relabelled": self.relabelled, "deleted": self.deleted, "added": self.added,
                "per_label": {label: dict(counts) for label, counts in self.per_label}}


def _labels_of(region: Track | Span) -> dict[str, frozenset[str]]:
    return {control: frozenset(labels) for control, labels in region.all_labels()}


def span_overlap(a: Span, b: Span) -> float:
    inter = max(0.0, min(a.end_s, b.end_s) - max(a.start_s, b.start_s))
    union = max(a.end_s, b.end_s) - min(a.start_s, b.start_s)
    return inter / union if union > 0 else float(a.start_s == b.start_s)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of (n, 4) x, y, w, h boxes; 0 where either is NaN."""
    ix = np.clip(np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = ix * iy
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return np.nan_to_num(iou, nan=0.0)


def track_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean IoU over the frames where either track is shown (boxes from ``track_boxes``)."""
    either = ~np.isnan(a[:, 0]) | ~np.isnan(b[:, 0])
    if not either.any():
        return 0.0
    return float(box_iou(a[either], b[either]).mean())


def _assign(scores: np.ndarray, minimum: float) -> list[tuple[int, int, float]]:
    if scores.size == 0:
        return []
    rows, cols = linear_sum_assignment(scores, maximize=True)
    return [(r, c, float(scores[r, c])) for r, c in zip(rows, cols) if scores[r, c] >= minimum and scores[r, c] > 0]


def _pairs(predicted: list, annotated: list, scores: np.ndarray, minimum: float, changed) -> list[RegionPair]:
    pairs = []
    matched_p, matched_a = set(), set()
    for r, c, overlap in _assign(scores, minimum):
        moved = changed(r, c)
        relabelled = _labels_of(predicted[r]) != _labels_of(annotated[c])
        pairs.append(RegionPair(predicted[r], annotated[c], overlap, moved, relabelled))
        matched_p.add(r)
        matched_a.add(c)
    pairs += [RegionPair(p, None) for i, p in enumerate(predicted) if i not in matched_p]
    pairs += [RegionPair(None, a) for i, a in enumerate(annotated) if i not in matched_a]
    return pairs


def match_tracks(predicted: list[Track], annotated: list[Track], frames_count: int,
                 options: MatchOptions = MatchOptions()) -> list[RegionPair]:
    boxes_p = [track_boxes(t, frames_count) for t in predicted]
    boxes_a = [track_boxes(t, frames_count) for t in annotated]
    scores = np.array([[track_overlap(p, a) for a in boxes_a] for p in boxes_p]).reshape(len(predicted),
                                                                                            len(annotated))

    def moved(r: int, c: int) -> bool:
        bp, ba = boxes_p[r], boxes_a[c]
        if not np.array_equal(np.isnan(bp[:, 0]), np.isnan(ba[:, 0])):
            return True
        shown = ~np.isnan(bp[:, 0])
        return bool(shown.any() and np.abs(bp[shown] - ba[shown]).max() > options.box_tolerance)

    return _pairs(predicted, annotated, scores, options.min_track_overlap, moved)


def match_spans(predicted: list[Span], annotated: list[Span], options: MatchOptions = MatchOptions()) -> list[RegionPair]:
    scores = np.array([[span_overlap(p, a) for a in annotated] for p in predicted]).reshape(len(predicted),
                                                                                              len(annotated))

    def moved(r: int, c: int) -> bool:
        p, a = predicted[r], annotated[c]
        return (abs(p.start_s - a.start_s) > options.time_tolerance_s
                or abs(p.end_s - a.end_s) > options.time_tolerance_s)

    return _pairs(predicted, annotated, scores, options.min_span_overlap, moved)


def _grouped(regions, key) -> dict:
    groups: dict = {}
    for region in regions:
        groups.setdefault(key(region), []).append(region)
    return groups


def match_regions(prediction: RegionSet, annotation: RegionSet,
                  options: MatchOptions = MatchOptions()) -> list[RegionPair]:
    """Every region of both, paired per control (tracks with tracks, spans with spans of the same
    control and kind)."""
    frames_count = annotation.frames_count or prediction.frames_count or _last_frame(prediction, annotation)
    pairs: list[RegionPair] = []
    tracks_p, tracks_a = _grouped(prediction.tracks, lambda t: t.control), _grouped(annotation.tracks,
                                                                                    lambda t: t.control)
    for control in sorted(set(tracks_p) | set(tracks_a)):
        pairs += match_tracks(tracks_p.get(control, []), tracks_a.get(control, []), frames_count, options)
    spans_p = _grouped(prediction.spans, lambda s: (s.kind, s.control))
    spans_a = _grouped(annotation.spans, lambda s: (s.kind, s.control))
    for key in sorted(set(spans_p) | set(spans_a)):
        pairs += match_spans(spans_p.get(key, []), spans_a.get(key, []), options)
    return pairs


def _last_frame(*sets: RegionSet) -> int:
    frames = [k.frame for s in sets for t in s.tracks for k in t.keyframes]
    return max(frames, default=1)


def outcomes(pairs: list[RegionPair]) -> Outcomes:
    totals: Counter = Counter()
    per_label: dict[str, Counter] = {}
    for pair in pairs:
        totals[pair.outcome] += 1
        totals["moved"] += pair.moved
        totals["relabelled"] += pair.relabelled
        per_label.setdefault(pair.label, Counter())[pair.outcome] += 1
    return Outcomes(kept=totals["kept"], edited=totals["edited"], moved=totals["moved"],
                    relabelled=totals["relabelled"], deleted=totals["deleted"], added=totals["added"],
                    per_label=tuple((label, tuple(sorted(c.items()))) for label, c in sorted(per_label.items())))


def add_outcomes(a: Outcomes, b: Outcomes) -> Outcomes:
    labels: dict[str, Counter] = {}
    for label, counts in a.per_label + b.per_label:
        labels.setdefault(label, Counter()).update(dict(counts))
    return Outcomes(a.kept + b.kept, a.edited + b.edited, a.moved + b.moved, a.relabelled + b.relabelled,
                    a.deleted + b.deleted, a.added + b.added,
                    tuple((label, tuple(sorted(c.items()))) for label, c in sorted(labels.items())))
