"""How far annotators agree with the model's suggestions, and with each other (pure computation
over ``RegionSet``s).

Time is cut into bins of ``bin_s`` seconds; each bin's centre is one unit of comparison.

- Span controls (audio segments, timeline labels, and the per-region controls of either): every
  bin of the media is a unit. A rater's value there is the set of labels of its regions of that
  control covering the centre: empty where it marked nothing.
- Face tracks: the model's and each annotator's tracks are paired (``matching``); a unit is a
  bin in which either track of a pair (or an unpaired track) shows a box. The values are the
  track's labels (its Labels and per-region Choices) where it shows a box, else empty.
- Whole-clip Choices: one unit per task.

Per control and label, over the units and the annotators who made an annotation of the task:
precision, recall and F1 of the model's "label present" against the annotator's, Cohen's kappa of
the two (scikit-learn) and Krippendorff's alpha (the ``krippendorff`` package, nominal) with the
model as one more rater. Per control: the nominal alpha over the units' whole label sets (empty
counts as its own value), with and without the model, and the confusion matrix of the model's
label set against the annotator's.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from .matching import MatchOptions, Outcomes, RegionPair, add_outcomes, match_regions, outcomes
from .regions import RegionSet, Track, track_lifespan

MODEL_RATER = "model"
NO_LABEL = "(none)"


@dataclass(frozen=True)
class AgreementOptions:
    bin_s: float = 1.0
    matching: MatchOptions = MatchOptions()


@dataclass(frozen=True)
class AnnotatedTask:
    task_id: int
    prediction: RegionSet | None
    annotations: tuple[RegionSet, ...]


@dataclass(frozen=True)
class LabelAgreement:
    label: str
    true_positive: int
    false_positive: int
    false_negative: int
    true_negative: int
    precision: float | None
    recall: float | None
    f1: float | None
    kappa: float | None
    alpha: float | None

    def to_dict(self) -> dict:
        return {"label": self.label, "true_positive": self.true_positive, "false_positive": self.false_positive,
                "false_negative": self.false_negative, "true_negative": self.true_negative,
                "precision": _r(self.precision), "recall": _r(self.recall), "f1": _r(self.f1),
                "kappa": _r(self.kappa), "alpha": _r(self.alpha)}


@dataclass(frozen=True)
class ControlAgreement:
    control: str
    kind: str  # track | span | clip
    units: int
    labels: tuple[LabelAgreement, ...]
    alpha: float | None  # the model and the annotators
    alpha_annotators: float | None  # the annotators alone (None with fewer than two)
    categories: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]  # rows: the model's value, columns: the annotator's

    def to_dict(self) -> dict:
        return {"control": self.control, "kind": self.kind, "units": self.units,
                "alpha": _r(self.alpha), "alpha_annotators": _r(self.alpha_annotators),
                "labels": [label.to_dict() for label in self.labels],
                "confusion": {"model_rows_annotator_columns": list(self.categories),
                              "counts": [list(row) for row in self.confusion]}}


@dataclass(frozen=True)
class AgreementReport:
    bin_s: float
    tasks_compared: int
    annotations_compared: int
    tasks_without_prediction: tuple[int, ...]
    tasks_without_annotation: tuple[int, ...]
    annotators: tuple[str, ...]
    controls: tuple[ControlAgreement, ...]
    outcomes: Outcomes

    def to_dict(self) -> dict:
        return {"bin_s": self.bin_s, "tasks_compared": self.tasks_compared,
                "annotations_compared": self.annotations_compared,
                "tasks_without_prediction": list(self.tasks_without_prediction),
                "tasks_without_annotation": list(self.tasks_without_annotation),
                "annotators": list(self.annotators),
                "suggestions": self.outcomes.to_dict(),
                "controls": [c.to_dict() for c in self.controls]}


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def rater_of(annotation: RegionSet) -> str:
    return annotation.annotator or f"annotation {annotation.source_id}"


class _Ratings:
    """unit -> rater -> label set, per control; plus which raters rated which task."""

    def __init__(self):
        self.values: dict[str, dict[tuple, dict[str, frozenset]]] = {}
        self.kinds: dict[str, str] = {}
        self.task_raters: dict[int, set[str]] = {}

    def unit(self, control: str, kind: str, key: tuple) -> dict[str, frozenset]:
        self.kinds.setdefault(control, kind)
        return self.values.setdefault(control, {}).setdefault(key, {})

    def add(self, control: str, kind: str, key: tuple, rater: str, labels) -> None:
        cell = self.unit(control, kind, key)
        cell[rater] = cell.get(rater, frozenset()) | frozenset(labels)


def _bin_centres(duration_s: float, bin_s: float) -> np.ndarray:
    count = max(1, math.ceil(duration_s / bin_s - 1e-9))
    return (np.arange(count) + 0.5) * bin_s


def _duration(task: AnnotatedTask) -> float:
    sets = [task.prediction, *task.annotations]
    known = [s.duration_s for s in sets if s is not None and s.duration_s]
    ends = [span.end_s for s in sets if s is not None for span in s.spans]
    return max(known + ends + [0.0])


def _rate_spans(ratings: _Ratings, task: AnnotatedTask, rater: str, regions: RegionSet, centres: np.ndarray) -> None:
    for span in regions.spans:
        covered = np.nonzero((centres >= span.start_s) & (centres < span.end_s))[0]
        for control, labels in span.all_labels():
            for b in covered:
                ratings.add(control, "span", (task.task_id, int(b)), rater, labels)


def _frame_of(centre_s: float, fps: float) -> int:
    return int(math.floor(centre_s * fps + 1e-6)) + 1


def _rate_tracks(ratings: _Ratings, task: AnnotatedTask, pairs_per_annotation: list[list[RegionPair]],
                 centres: np.ndarray) -> None:
    """Each annotation's tracks are rated where the pairing (``match_regions``, made once per
    annotation) put them: beside the suggested track they answer, or on their own."""
    prediction = task.prediction
    fps = next((s.fps for s in [prediction, *task.annotations] if s is not None and s.fps), None)
    if fps is None:
        return
    frames_count = max([s.frames_count or 0 for s in [prediction, *task.annotations]] + [1])
    bins = np.array([min(frames_count, _frame_of(c, fps)) - 1 for c in centres])  # 0-based frame per bin

    def rate(track, rater: str, anchor: str) -> None:
        shown = track_lifespan(track, frames_count)[bins]
        for b in np.nonzero(shown)[0]:
            for control, labels in track.all_labels():
                ratings.add(control, "track", (task.task_id, anchor, int(b)), rater, labels)

    for track in prediction.tracks:
        rate(track, MODEL_RATER, track.region_id)
    for annotation, pairs in zip(task.annotations, pairs_per_annotation):
        rater = rater_of(annotation)
        for pair in pairs:
            if not isinstance(pair.annotated, Track):
                continue
            anchor = (pair.predicted.region_id if pair.predicted is not None
                      else f"{rater}:{pair.annotated.region_id}")
            rate(pair.annotated, rater, anchor)


def _rate(ratings: _Ratings, task: AnnotatedTask, options: AgreementOptions,
          pairs_per_annotation: list[list[RegionPair]]) -> None:
    raters = {MODEL_RATER: task.prediction} | {rater_of(a): a for a in task.annotations}
    ratings.task_raters[task.task_id] = set(raters)
    centres = _bin_centres(_duration(task), options.bin_s)
    span_controls = {control for regions in raters.values() for span in regions.spans
                     for control, _ in span.all_labels()}
    for control in span_controls:  # every bin is a unit, labelled or not
        for b in range(len(centres)):
            ratings.unit(control, "span", (task.task_id, b))
    for rater, regions in raters.items():
        _rate_spans(ratings, task, rater, regions, centres)
    _rate_tracks(ratings, task, pairs_per_annotation, centres)
    for regions in raters.values():
        for control, _ in regions.clip_choices:
            ratings.unit(control, "clip", (task.task_id, "clip"))
    for rater, regions in raters.items():
        for control, labels in regions.clip_choices:
            ratings.add(control, "clip", (task.task_id, "clip"), rater, labels)


def _category(labels: frozenset | None) -> str | None:
    if labels is None:
        return None
    return "+".join(sorted(labels)) if labels else NO_LABEL


def _alpha(matrix: np.ndarray) -> float | None:
    """Nominal Krippendorff's alpha of a raters x units matrix (NaN = not rated); None where it is
    not defined (fewer than two values in all, or no unit rated twice)."""
    import krippendorff

    if matrix.shape[0] < 2 or not (np.sum(~np.isnan(matrix), axis=0) >= 2).any():
        return None
    if len(np.unique(matrix[~np.isnan(matrix)])) < 2:
        return None
    value = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    return None if value is None or not np.isfinite(value) else float(value)


def _kappa(model: list[int], annotator: list[int]) -> float | None:
    from sklearn.metrics import cohen_kappa_score

    if not model or len(set(model) | set(annotator)) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an undefined kappa is reported as None, not warned about
        value = cohen_kappa_score(model, annotator)
    return float(value) if np.isfinite(value) else None


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _control_agreement(control: str, kind: str, units: dict[tuple, dict[str, frozenset]],
                       task_raters: dict[int, set[str]], annotators: list[str]) -> ControlAgreement:
    keys = sorted(units, key=repr)
    raters = [MODEL_RATER] + annotators

    def value(key: tuple, rater: str) -> frozenset | None:
        if rater not in task_raters[key[0]]:
            return None  # this rater did not annotate the task
        return units[key].get(rater, frozenset())

    table = [[value(key, rater) for key in keys] for rater in raters]
    labels = sorted({label for row in table for cell in row if cell for label in cell})
    comparisons = [(table[0][u], table[r][u]) for r in range(1, len(raters)) for u in range(len(keys))
                   if table[0][u] is not None and table[r][u] is not None]
    per_label = []
    for label in labels:
        model_bits = [int(label in m) for m, _ in comparisons]
        annotator_bits = [int(label in a) for _, a in comparisons]
        tp = sum(m & a for m, a in zip(model_bits, annotator_bits))
        fp = sum(m & (1 - a) for m, a in zip(model_bits, annotator_bits))
        fn = sum((1 - m) & a for m, a in zip(model_bits, annotator_bits))
        tn = len(comparisons) - tp - fp - fn
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        f1 = _ratio(2 * tp, 2 * tp + fp + fn)
        binary = np.array([[np.nan if cell is None else float(label in cell) for cell in row] for row in table])
        per_label.append(LabelAgreement(label, tp, fp, fn, tn, precision, recall, f1,
                                        _kappa(model_bits, annotator_bits), _alpha(binary)))
    categories = sorted({_category(c) for row in table for c in row if c is not None} - {NO_LABEL}) + [NO_LABEL]
    code = {name: i for i, name in enumerate(categories)}
    coded = np.array([[np.nan if c is None else code[_category(c)] for c in row] for row in table], dtype=float)
    confusion = np.zeros((len(categories), len(categories)), dtype=int)
    for m, a in comparisons:
        confusion[code[_category(m)], code[_category(a)]] += 1
    return ControlAgreement(
        control=control, kind=kind, units=len(keys), labels=tuple(per_label), alpha=_alpha(coded),
        alpha_annotators=_alpha(coded[1:]) if len(annotators) >= 2 else None,
        categories=tuple(categories), confusion=tuple(tuple(int(v) for v in row) for row in confusion))


def agreement(tasks: list[AnnotatedTask], options: AgreementOptions = AgreementOptions()) -> AgreementReport:
    compared = [t for t in tasks if t.prediction is not None and t.annotations]
    ratings = _Ratings()
    total = Outcomes()
    for task in compared:
        pairs_per_annotation = [match_regions(task.prediction, annotation, options.matching)
                                 for annotation in task.annotations]
        _rate(ratings, task, options, pairs_per_annotation)
        for pairs in pairs_per_annotation:
            total = add_outcomes(total, outcomes(pairs))
    annotators = sorted({rater_of(a) for t in compared for a in t.annotations})
    controls = tuple(_control_agreement(control, ratings.kinds[control], ratings.values[control],
                                        ratings.task_raters, annotators)
                     for control in sorted(ratings.values))
    return AgreementReport(
        bin_s=options.bin_s, tasks_compared=len(compared),
        annotations_compared=sum(len(t.annotations) for t in compared),
        tasks_without_prediction=tuple(t.task_id for t in tasks if t.prediction is None and t.annotations),
        tasks_without_annotation=tuple(t.task_id for t in tasks if not t.annotations),
        annotators=tuple(annotators), controls=controls, outcomes=total)
