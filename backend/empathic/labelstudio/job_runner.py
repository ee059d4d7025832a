"""Running one background job: predict the task with the backend class, then deliver the
prediction to Label Studio (see jobs.py for the queues that call this)."""

from __future__ import annotations

import logging
import time

from .backend import EmpathicBackend, default_service
from .jobs import Throttled
from .label_studio_api import LabelStudioApi, LabelStudioApiError
from .media_fetch import LabelStudioAccess

log = logging.getLogger(__name__)


def execute(payload: dict, service, report=None) -> dict:
    """Predict one task and post the prediction to Label Studio unless it already holds one of this
    model version. Raises when the task cannot be predicted (the queue then retries or fails it)."""
    backend = EmpathicBackend(payload["project"], payload["label_config"], service=service)
    task = payload["task"]
    prediction = backend.predict_now(task, hook=report)
    prediction["model_version"] = payload["model_version"]
    settings = service.settings
    api = LabelStudioApi(LabelStudioAccess(settings.label_studio_url, settings.label_studio_api_key))
    delivered = deliver(api, task["id"], prediction, payload["model_version"], settings.delivery_timeout_s)
    log.info("task %s of project %s predicted%s", task["id"], payload["project"],
             ", prediction posted" if delivered else "; it already had one of this version")
    return {"task": task["id"], "delivered": delivered}


def deliver(api, task_id: int, prediction: dict, model_version: str, give_up_after_s: float,
            sleep=time.sleep) -> bool:
    """Post the prediction unless the task holds one of this version; while Label Studio is down
    or failing (no answer, 429, 5xx) try again with a doubling wait (1 s up to 60 s) for at most
    ``give_up_after_s``. The check comes before every post, so a post whose answer was lost is never
    repeated. True if this call posted it."""
    deadline = time.monotonic() + give_up_after_s
    wait = 1.0
    while True:
        try:
            if model_version in api.prediction_versions(task_id):
                return False
            api.post_prediction(task_id, prediction)
            return True
        except LabelStudioApiError as exc:
            if not exc.passing or time.monotonic() + wait > deadline:
                raise
            log.warning("task %s: Label Studio did not take the prediction (%s); trying again in %g s",
                        task_id, exc, wait)
            sleep(wait)
            wait = min(2 * wait, 60.0)


def run_rq_job(payload: dict) -> dict:
    """What an RQ worker runs: the worker process's own service, progress into the job's meta."""
    from rq import get_current_job

    job = get_current_job()

    def write(progress: dict) -> None:
        if job is not None:
            job.meta["progress"] = progress
            job.save_meta()

    return execute(payload, default_service(), Throttled(write))
