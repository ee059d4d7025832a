"""A Label Studio project's annotations and the model's predictions, read over the REST API into
``AnnotatedTask``s for the agreement report and the annotation export.

Which prediction stands for the model on a task: the newest one of ``model_version`` when it is
given, else the newest of the project's current model version, else the newest of any version.
Cancelled (skipped) annotations are left out; an annotation whose result is empty counts (its
annotator deleted every suggestion).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..progress import ProgressHook
from ..review.agreement import AnnotatedTask
from .annotation_results import ResultError, region_set
from .config import ProjectPlan, parse_config
from .label_studio_api import LabelStudioApi
from .predictions import editor_frame_rate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProjectAnnotations:
    project_id: int
    title: str
    plan: ProjectPlan
    model_version: str | None  # the version(s) of the predictions compared, comma-separated
    tasks: tuple[AnnotatedTask, ...]
    task_data: tuple[tuple[int, dict], ...]  # task id -> its data (the media values)
    unreadable: tuple[tuple[int, str], ...]  # task id -> why its annotations could not be read


def annotator_of(annotation: dict) -> str:
    name = str(annotation.get("created_username") or "").strip()
    return name or f"user {annotation.get('completed_by')}"


def _newest(items: list[dict]) -> dict | None:
    return max(items, key=lambda p: (str(p.get("created_at") or ""), p.get("id") or 0), default=None)


def choose_prediction(predictions: list[dict], model_version: str | None, project_version: str | None) -> dict | None:
    if model_version is not None:
        return _newest([p for p in predictions if p.get("model_version") == model_version])
    current = [p for p in predictions if project_version and p.get("model_version") == project_version]
    return _newest(current or predictions)


def read_project(api: LabelStudioApi, project_id: int, model_version: str | None = None,
                 hook: ProgressHook | None = None) -> ProjectAnnotations:
    project = api.project(project_id)
    plan = parse_config(project.get("label_config") or "")
    video = plan.video()
    tasks = list(api.tasks(project_id))
    annotated, unreadable, data = [], [], []
    versions: set[str] = set()
    for task in tasks:
        task_id = int(task["id"])
        task_data = task.get("data") or {}
        fps = editor_frame_rate(video, task_data)[0] if video is not None else None
        try:
            prediction = choose_prediction(api.predictions(task_id), model_version, project.get("model_version"))
            if prediction:
                versions.add(str(prediction.get("model_version")))
            predicted = (region_set(prediction.get("result") or [], fps, annotator="model",
                                    source_id=prediction.get("id")) if prediction else None)
            annotations = tuple(
                region_set(a.get("result") or [], fps, annotator=annotator_of(a), source_id=a.get("id"))
                for a in api.annotations(task_id) if not a.get("was_cancelled"))
        except ResultError as exc:
            unreadable.append((task_id, str(exc)))
            log.warning("task %s: %s", task_id, exc)
        else:
            annotated.append(AnnotatedTask(task_id, predicted, annotations))
            data.append((task_id, task_data))
        if hook is not None:
            hook("tasks", len(annotated) + len(unreadable), len(tasks))
    return ProjectAnnotations(project_id, str(project.get("title") or ""), plan,
                              model_version or ", ".join(sorted(versions)) or None,
                              tuple(annotated), tuple(data), tuple(unreadable))

