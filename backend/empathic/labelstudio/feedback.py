"""What annotators do with the suggestions, kept up to date from Label Studio's webhooks.

Label Studio sends ``ANNOTATION_CREATED`` / ``ANNOTATION_UPDATED`` with the annotation's result,
its task and project, and the id of the prediction the annotator started from
(``parent_prediction``). That prediction is read back over the API (or, for an annotation begun
from scratch, the task's newest prediction of the backend's model version) and the two are
matched as ``empathic agreement`` matches them. Each annotation's latest outcome replaces its
earlier one, ``ANNOTATIONS_DELETED`` (which carries only the ids) takes it out, and /metrics shows the totals per outcome and
label. The figures live in the serving process: they start from zero when it restarts
(``empathic agreement`` recomputes them from Label Studio at any time).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from ..review.matching import Outcomes, add_outcomes, match_regions, outcomes
from .annotation_results import ResultError, region_set
from .config import ConfigError, parse_config
from .label_studio_api import LabelStudioApiError
from .predictions import editor_frame_rate
from .review_source import choose_prediction

log = logging.getLogger(__name__)

FEEDBACK_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")


class FeedbackError(ValueError):
    """A webhook whose annotation cannot be compared (says which and why)."""


def annotation_outcomes(body: dict, api, model_version: str | None) -> Outcomes:
    annotation, task, project = body.get("annotation") or {}, body.get("task") or {}, body.get("project") or {}
    prediction = None
    if annotation.get("parent_prediction") is not None:
        prediction = api.prediction(int(annotation["parent_prediction"]))
    elif task.get("id") is not None:
        prediction = choose_prediction(api.predictions(int(task["id"])), model_version, project.get("model_version"))
    if not prediction:
        raise FeedbackError(f"annotation {annotation.get('id')} of task {task.get('id')} has no prediction to "
                            f"compare with")
    try:
        video = parse_config(project.get("label_config") or "").video()
    except ConfigError as exc:
        raise FeedbackError(f"project {project.get('id')}: {exc}") from None
    fps = editor_frame_rate(video, task.get("data") or {})[0] if video is not None else None
    try:
        suggested = region_set(prediction.get("result") or [], fps)
        made = region_set(annotation.get("result") or [], fps)
    except ResultError as exc:
        raise FeedbackError(f"annotation {annotation.get('id')}: {exc}") from None
    return outcomes(match_regions(suggested, made))


class SuggestionFeedback:
    """Per annotation, its latest outcome; the totals for /metrics. Work happens off the request
    thread: Label Studio waits for a webhook's answer only briefly (WEBHOOK_TIMEOUT, 1 s)."""

    def __init__(self, count=None):
        self._by_annotation: dict[int, Outcomes] = {}
        self._lock = threading.Lock()
        self._count = count or (lambda name: None)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feedback")

    def submit(self, action: str, body: dict, api, model_version: str | None):
        return self._worker.submit(self.handle, action, body, api, model_version)

    def handle(self, action: str, body: dict, api, model_version: str | None) -> None:
        if action == "ANNOTATIONS_DELETED":
            with self._lock:
                for item in body.get("annotations") or []:
                    if isinstance(item, dict) and item.get("id") is not None:
                        self._by_annotation.pop(int(item["id"]), None)
            return
        annotation = body.get("annotation") or {}
        if annotation.get("id") is None:
            self._count("feedback_unreadable")
            return
        annotation_id = int(annotation["id"])
        if annotation.get("was_cancelled"):  # skipped: no judgement of the suggestions
            with self._lock:
                self._by_annotation.pop(annotation_id, None)
            return
        if api is None:
            self._count("feedback_without_label_studio")
            return
        try:
            found = annotation_outcomes(body, api, model_version)
        except (FeedbackError, LabelStudioApiError) as exc:
            self._count("feedback_unreadable")
            log.warning("webhook %s: %s", action, exc)
            return
        with self._lock:
            self._by_annotation[annotation_id] = found
        self._count("feedback_annotations")

    def totals(self) -> Outcomes:
        with self._lock:
            found = list(self._by_annotation.values())
        total = Outcomes()
        for item in found:
            total = add_outcomes(total, item)
        return total
