"""The agreement report for people: one self-contained HTML page (the plots are PNGs inside the page,
so it opens offline and can be mailed), and the same figures as JSON for machines.

Per control: F1, Cohen's kappa and Krippendorff's alpha per label as bars, the confusion matrix as a
heat map; for the whole project, what annotators did with the suggestions.
"""

from __future__ import annotations

import base64
import html
import io
import json

from ..review.agreement import AgreementReport, ControlAgreement


def report_json(report: AgreementReport, header: dict) -> str:
    return json.dumps({**header, **report.to_dict()}, indent=2, ensure_ascii=False) + "\n"


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figures(control: ControlAgreement) -> list[str]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    images = []
    if control.labels:
        names = [label.label for label in control.labels]
        figure = Figure(figsize=(max(5.0, 0.5 * len(names) + 2), 3.2))
        axes = figure.subplots()
        width = 0.27
        for offset, (key, colour) in enumerate((("f1", "#4c72b0"), ("kappa", "#dd8452"), ("alpha", "#55a868"))):
            values = [getattr(label, key) for label in control.labels]
            axes.bar([i + (offset - 1) * width for i in range(len(names))],
                     [v if v is not None else 0.0 for v in values], width, label=key, color=colour)
        axes.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        axes.set_ylim(-1, 1)
        axes.axhline(0, color="black", linewidth=0.5)
        axes.set_title(f"{control.control}: agreement per label")
        axes.legend(fontsize=8)
        images.append(_png(figure))
    if len(control.categories) > 1:
        size = len(control.categories)
        figure = Figure(figsize=(max(4.0, 0.45 * size + 2.5), max(3.5, 0.45 * size + 2)))
        axes = figure.subplots()
        image = axes.imshow(control.confusion, cmap="Blues")
        axes.set_xticks(range(size), control.categories, rotation=45, ha="right", fontsize=8)
        axes.set_yticks(range(size), control.categories, fontsize=8)
        axes.set_xlabel("annotator")
        axes.set_ylabel("model")
        for r, row in enumerate(control.confusion):
            for c, count in enumerate(row):
                if count:
                    axes.text(c, r, str(count), ha="center", va="center", fontsize=7)
        figure.colorbar(image, ax=axes)
        axes.set_title(f"{control.control}: confusion ({control.kind} units)")
        images.append(_png(figure))
    return images


def _cell(value) -> str:
    if value is None:
        return "&ndash;"
    return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def report_html(report: AgreementReport, header: dict) -> str:
    title = html.escape(f"Agreement: {header.get('project_title') or ''} (project {header.get('project')})")
    outcomes = report.outcomes
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
             "td:first-child{text-align:left}</style></head><body>",
             f"<h1>{title}</h1>",
             f"<p>Model version {html.escape(str(header.get('model_version')))}; {report.tasks_compared} tasks "
             f"and {report.annotations_compared} annotations compared, in bins of {report.bin_s:g} s. "
             f"Tasks without a prediction: {len(report.tasks_without_prediction)}; without an annotation: "
             f"{len(report.tasks_without_annotation)}. Annotators: "
             f"{html.escape(', '.join(report.annotators)) or 'none'}.</p>",
             "<h2>Suggestions</h2><table><tr><th>suggested</th><th>kept</th><th>edited</th><th>moved</th>"
             "<th>relabelled</th><th>deleted</th><th>added by annotators</th></tr>",
             "<tr>" + "".join(f"<td>{v}</td>" for v in (outcomes.suggested, outcomes.kept, outcomes.edited,
                                                          outcomes.moved, outcomes.relabelled, outcomes.deleted,
                                                          outcomes.added)) + "</tr></table>"]
    for control in report.controls:
        parts.append(f"<h2 id='{html.escape(control.control)}'>{html.escape(control.control)}</h2>"
                     f"<p>{control.units} {control.kind} units; Krippendorff's alpha with the model "
                     f"{_cell(control.alpha)}, annotators alone {_cell(control.alpha_annotators)}.</p>")
        parts.append("<table><tr><th>label</th><th>TP</th><th>FP</th><th>FN</th><th>TN</th><th>precision</th>"
                     "<th>recall</th><th>F1</th><th>kappa</th><th>alpha</th></tr>")
        for label in control.labels:
            parts.append("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in (
                label.label, label.true_positive, label.false_positive, label.false_negative,
                label.true_negative, label.precision, label.recall, label.f1, label.kappa, label.alpha)) + "</tr>")
        parts.append("</table>")
        parts += [f"<img alt='{html.escape(control.control)}' src='data:image/png;base64,{png}'>"
                  for png in _figures(control)]
    parts.append("</body></html>\n")
    return "\n".join(parts)
