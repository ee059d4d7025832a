"""Background jobs: tasks too long for Label Studio's request timeout are predicted later and the
prediction is posted to Label Studio by the worker that made it.

With REDIS_URL the queue is RQ's, consumed by `empathic worker` processes on any number of
machines; without it, one thread in the server process runs the jobs (the embedded default). A job
is identified by its task, media reference, labeling config and model version, so submitting the
same work twice while it is queued or running adds nothing; RQ retries a failed job a bounded
number of times, and a job whose worker died goes back to the queue. Delivery is idempotent too:
a worker posts a prediction only if the task holds none of the current model version.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)

STATES = ("queued", "running", "done", "failed")
PROGRESS_EVERY_S = 1.0  # how often a running job writes its progress


@dataclass(frozen=True)
class JobInfo:
    id: str
    project: str
    task: int | None
    state: str  # queued | running | done | failed
    progress: dict | None = None  # {"step", "completed", "total"}
    reason: str | None = None  # why it failed
    delivered: bool | None = None  # whether the worker posted the prediction

    def to_dict(self) -> dict:
        return asdict(self)


def job_payload(project: str, label_config: str, task: dict, model_version: str) -> dict:
    return {"project": project, "label_config": label_config, "model_version": model_version,
            "task": {"id": task.get("id"), "data": task.get("data") or {}}}


def job_id(payload: dict) -> str:
    canonical = json.dumps([payload["project"], payload["task"], payload["label_config"], payload["model_version"]],
                           sort_keys=True, default=str)
    return "empathic-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


class JobQueue(ABC):
    @abstractmethod
    def submit(self, payload: dict) -> JobInfo: ...

    @abstractmethod
    def get(self, job_id: str) -> JobInfo | None: ...

    @abstractmethod
    def list(self, project: str | None = None) -> list[JobInfo]: ...

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for info in self.list():
            counts[info.state] += 1
        return counts

    def queued(self) -> int:
        return self.counts()["queued"]


# The code that runs a job predicts with the backend class, which submits jobs: it is named here by
# its dotted path (as RQ names functions anyway), so that this module imports none of it.
RUNNER_MODULE = "empathic.labelstudio.job_runner"
RQ_JOB_FUNCTION = f"{RUNNER_MODULE}.run_rq_job"


def _runner(name: str):
    return getattr(importlib.import_module(RUNNER_MODULE), name)


class Throttled:
    """A progress hook that writes at most once a second (progress goes to Redis for RQ jobs)."""

    def __init__(self, write):
        self.write = write
        self.last = 0.0

    def __call__(self, step: str, completed: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S or (total is not None and completed >= total):
            self.last = now
            self.write({"step": step, "completed": completed, "total": total})


class LocalJobQueue(JobQueue):
    """One worker thread inside this process: the default without Redis."""

    def __init__(self, service):
        self.service = service
        self._infos: dict[str, JobInfo] = {}
        self._lock = threading.Lock()
        self._pending: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="empathic-jobs", daemon=True)
        self._thread.start()

    def _set(self, job: str, **changes) -> None:
        with self._lock:
            current = self._infos[job]
            self._infos[job] = JobInfo(**{**current.to_dict(), **changes})

    def submit(self, payload: dict) -> JobInfo:
        job = job_id(payload)
        with self._lock:
            existing = self._infos.get(job)
            if existing is not None and existing.state in ("queued", "running"):
                return existing
            self._infos[job] = JobInfo(job, payload["project"], payload["task"]["id"], "queued")
        self._pending.put((job, payload))
        return self._infos[job]

    def _run(self) -> None:
        retries = self.service.settings.job_retries
        while True:
            job, payload = self._pending.get()
            for attempt in range(retries + 1):
                self._set(job, state="running", reason=None)
                try:
                    report = Throttled(lambda progress: self._set(job, progress=progress))
                    result = _runner("execute")(payload, self.service, report)
                    self._set(job, state="done", delivered=result["delivered"])
                    break
                except Exception as exc:  # recorded on the job; the thread goes on
                    reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                    self._set(job, state="failed", reason=reason)
                    log.error("job %s (task %s) failed, attempt %d of %d: %s", job, payload["task"]["id"],
                              attempt + 1, retries + 1, reason)

    def get(self, job_id_: str) -> JobInfo | None:
        with self._lock:
            return self._infos.get(job_id_)

    def list(self, project: str | None = None) -> list[JobInfo]:
        with self._lock:
            return [i for i in self._infos.values() if project is None or i.project == str(project)]


def run_rq_job(payload: dict) -> dict:
    """The path jobs queued by earlier versions name: runs them as job_runner.run_rq_job does."""
    return _runner("run_rq_job")(payload)


class RQJobQueue(JobQueue):
    _STATE = {"queued": "queued", "deferred": "queued", "scheduled": "queued", "started": "running",
              "finished": "done", "failed": "failed", "stopped": "failed", "canceled": "failed"}

    def __init__(self, settings):
        from redis import Redis
        from rq import Queue

        self.connection = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
        self.queue = Queue(settings.queue_name, connection=self.connection)
        self.retries = settings.job_retries
        self.timeout_s = settings.job_timeout_s

    def _info(self, job) -> JobInfo:
        status = job.get_status(refresh=False)
        state = self._STATE.get(getattr(status, "value", str(status)), "queued")
        reason = None
        if state == "failed":
            latest = job.latest_result()
            text = (getattr(latest, "exc_string", None) or "").strip().splitlines()
            reason = text[-1] if text else "failed"
        result = job.return_value() if state == "done" else None
        payload = job.args[0] if job.args else {}
        return JobInfo(job.id, str(payload.get("project", "")), (payload.get("task") or {}).get("id"), state,
                       job.meta.get("progress"), reason,
                       result.get("delivered") if isinstance(result, dict) else None)

    def submit(self, payload: dict) -> JobInfo:
        from rq import Retry
        from rq.exceptions import NoSuchJobError
        from rq.job import Job

        job_key = job_id(payload)
        try:
            existing = Job.fetch(job_key, connection=self.connection)
            info = self._info(existing)
            if info.state in ("queued", "running"):
                return info
            existing.delete()  # done or failed before: this is a new request for the same work
        except NoSuchJobError:
            pass
        job = self.queue.enqueue(RQ_JOB_FUNCTION, payload, job_id=job_key, job_timeout=self.timeout_s,
                                 result_ttl=24 * 3600, failure_ttl=7 * 24 * 3600,
                                 retry=Retry(max=self.retries) if self.retries else None,
                                 description=f"project {payload['project']} task {payload['task']['id']}")
        return self._info(job)

    def get(self, job_id_: str) -> JobInfo | None:
        from rq.exceptions import NoSuchJobError
        from rq.job import Job

        try:
            return self._info(Job.fetch(job_id_, connection=self.connection))
        except NoSuchJobError:
            return None

    def list(self, project: str | None = None) -> list[JobInfo]:
        from rq.job import Job

        ids = list(self.queue.job_ids)
        for registry in (self.queue.started_job_registry, self.queue.finished_job_registry,
                         self.queue.failed_job_registry, self.queue.deferred_job_registry,
                         self.queue.scheduled_job_registry):
            ids += registry.get_job_ids()
        jobs = [j for j in Job.fetch_many(list(dict.fromkeys(ids)), connection=self.connection) if j is not None]
        infos = [self._info(j) for j in jobs]
        return [i for i in infos if project is None or i.project == str(project)]

    def queued(self) -> int:
        return self.queue.count


def make_worker(settings, monitoring_interval_s: int = 10, maintenance_interval_s: int = 15):
    """An RQ worker that runs jobs in its own process, keeping its models loaded between jobs."""
    import threading as _threading

    from redis import Redis
    from rq import Queue
    from rq.worker import SimpleWorker, WorkerStatus

    class HeartbeatWorker(SimpleWorker):
        """RQ's SimpleWorker runs the job in-process (no fork: CUDA cannot cross a fork, and the
        models stay loaded), but it sets the job's heartbeat once for the whole job timeout, so a
        killed worker's job would wait hours to be retried. This one beats every
        ``job_monitoring_interval`` seconds while the job runs, so another worker takes the job
        back about a minute after this one dies."""

        def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
            remaining = (job.timeout - working_time) if job.timeout and job.timeout > 0 else self.job_monitoring_interval
            return int(min(remaining, self.job_monitoring_interval)) + 60

        def execute_job(self, job, queue):
            execution = self.prepare_execution(job)
            stop = _threading.Event()

            def beat():
                while not stop.wait(self.job_monitoring_interval):
                    try:
                        self.maintain_heartbeats(job, execution)
                    except Exception as exc:  # a missed beat is retried on the next one
                        log.warning("heartbeat of job %s failed: %s", job.id, exc)

            beater = _threading.Thread(target=beat, name="rq-heartbeat", daemon=True)
            beater.start()
            try:
                self.perform_job(job, queue, execution)
            finally:
                stop.set()
                beater.join()
            self.set_state(WorkerStatus.IDLE)

    connection = Redis.from_url(settings.redis_url)
    # An idle worker waits for jobs in one blocking call of worker_ttl - 15 s and only then runs its
    # maintenance (which hands a dead worker's job back): 30 s keeps that wait at 15 s, not RQ's 405.
    return HeartbeatWorker([Queue(settings.queue_name, connection=connection)], connection=connection,
                           job_monitoring_interval=monitoring_interval_s,
                           maintenance_interval=maintenance_interval_s, worker_ttl=30)
