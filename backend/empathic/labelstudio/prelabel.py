"""Pre-labelling a whole Label Studio project from the command line (``empathic prelabel``).

Lists the project's tasks, skips those that already hold a prediction of the current model
version, predicts the rest one at a time with the same backend class as the server (or queues a job
per task for `empathic worker` processes), and posts each prediction as soon as it exists. An
interrupted run therefore loses at most the task in hand, and running it again continues where it stopped; a second complete run does nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..progress import ProgressHook
from .backend import EmpathicBackend
from .jobs import job_payload
from .label_studio_api import LabelStudioApi
from .service import AnalysisService

log = logging.getLogger(__name__)


@dataclass
class PrelabelSummary:
    selected: int = 0
    already_predicted: int = 0
    done: int = 0
    served_from_cache: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)

    def line(self) -> str:
        text = (f"{self.selected} task(s) selected: {self.done} predicted ({self.served_from_cache} from the "
                f"cache), {self.already_predicted} already had a prediction, {len(self.failed)} failed")
        return text + "".join(f"\n  task {task}: {reason}" for task, reason in self.failed)


def select_tasks(tasks: list[dict], which: str) -> list[dict]:
    """``all``, ``unlabeled`` (no annotation yet) or comma-separated task ids."""
    if which == "all":
        return tasks
    if which == "unlabeled":
        return [t for t in tasks if not t.get("total_annotations") and not t.get("is_labeled")]
    try:
        wanted = {int(part) for part in which.split(",") if part.strip()}
    except ValueError:
        raise ValueError(f"--tasks takes all, unlabeled or comma-separated task ids, got {which!r}") from None
    chosen = [t for t in tasks if t["id"] in wanted]
    missing = wanted - {t["id"] for t in chosen}
    if missing:
        raise ValueError(f"task(s) {', '.join(map(str, sorted(missing)))} are not in this project")
    return chosen


def prelabel(api: LabelStudioApi, project_id: int, service: AnalysisService, which: str = "all",
             hook: ProgressHook | None = None, workers: str = "local",
             poll_s: float = 1.0) -> PrelabelSummary:
    """``workers="local"`` predicts here, task after task; ``"rq"`` queues a job per task for
    `empathic worker` processes (their workers post the predictions) and follows the jobs."""
    project = api.project(project_id)
    backend = EmpathicBackend(str(project_id), project["label_config"], service=service)
    tasks = select_tasks(list(api.tasks(project_id)), which)
    summary = PrelabelSummary(selected=len(tasks))
    version = backend.model_version
    if hook:
        hook("tasks", 0, len(tasks))
    if workers == "rq":
        return _prelabel_with_jobs(api, project_id, backend, tasks, summary, hook, poll_s)
    for number, task in enumerate(tasks, start=1):
        if version in api.prediction_versions(task["id"]):
            summary.already_predicted += 1
        else:
            hits_before = service.counters["face_cache_hits"] + service.counters["voice_cache_hits"]
            misses_before = service.counters["face_cache_misses"] + service.counters["voice_cache_misses"]
            (prediction,) = backend.predict([task])
            if prediction:
                api.post_prediction(task["id"], prediction)
                summary.done += 1
                hits = service.counters["face_cache_hits"] + service.counters["voice_cache_hits"] - hits_before
                misses = service.counters["face_cache_misses"] + service.counters["voice_cache_misses"] - misses_before
                summary.served_from_cache += int(hits > 0 and misses == 0)
            else:
                summary.failed.append((task["id"], backend.last_failure or "unknown failure"))
        if hook:
            hook("tasks", number, len(tasks))
    return summary


def _prelabel_with_jobs(api: LabelStudioApi, project_id: int, backend: EmpathicBackend, tasks: list[dict],
                        summary: PrelabelSummary, hook, poll_s: float) -> PrelabelSummary:
    import time

    service = backend.service
    if not service.settings.redis_url:
        raise ValueError("--workers rq needs REDIS_URL: the queue that `empathic worker` processes consume")
    pending: dict[str, int] = {}
    for task in tasks:
        if backend.model_version in api.prediction_versions(task["id"]):
            summary.already_predicted += 1
            continue
        info = service.jobs.submit(job_payload(str(project_id), backend.label_config, task, backend.model_version))
        pending[info.id] = task["id"]
    finished = summary.already_predicted
    while pending:
        for job, task_id in list(pending.items()):
            info = service.jobs.get(job)
            if info is None or info.state not in ("done", "failed"):
                continue
            del pending[job]
            finished += 1
            if info.state == "done":
                summary.done += 1
            else:
                summary.failed.append((task_id, info.reason or "failed"))
        if hook:
            hook("tasks", finished, len(tasks))
        if pending:
            time.sleep(poll_s)
    return summary
