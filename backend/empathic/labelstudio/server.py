"""Label Studio's ML-backend wire protocol on Flask (the JSON shapes of upstream's server).

GET /, /health (always fast), POST /setup (parses the config; never loads a model), POST /predict
(answers within INLINE_BUDGET_S; longer tasks become background jobs), POST /webhook (retrains
nothing), GET /jobs (?project=ID) and /jobs/<id> (state, progress, failure reason; 503 while the
queue is unreachable), GET /metrics (Prometheus text), GET /versions, GET /live/events (a live session as
Server-Sent Events) and GET /live (a page that follows one), both off unless LIVE=true. A malformed body gets a 400
with a one-line reason. HTTP basic auth when BASIC_AUTH_USER and BASIC_AUTH_PASS are set.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from contextlib import contextmanager

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from .backend import EmpathicBackend
from .cache import redact_url
from .config import ConfigError
from .feedback import FEEDBACK_EVENTS
from .live_page import LIVE_PAGE
from .live_stream import LiveRefused, LiveStreams
from .service import AnalysisService

log = logging.getLogger(__name__)

TRAIN_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATION_DELETED", "START_TRAINING")


class QueueUnreachable(RuntimeError):
    """The job queue (Redis) does not answer; answered 503."""


@contextmanager
def _queue_errors(settings):
    try:
        yield
    except Exception as exc:
        if exc.__class__.__module__.startswith(("redis", "rq")) or isinstance(exc, OSError):
            raise QueueUnreachable(f"the job queue at {redact_url(settings.redis_url or '')} does not answer: "
                                   f"{type(exc).__name__}") from None
        raise


class BadRequest(ValueError):
    """A request body the protocol cannot take; answered 400 with this one-line reason."""


def _project_id(value) -> str:
    # Label Studio sends "<id>.<created timestamp>"
    if value is not None and not isinstance(value, (str, int)) or isinstance(value, bool):
        raise BadRequest(f"'project' must be a string or a number, got {_type_name(value)}")
    return str(value).split(".", 1)[0] if value is not None else ""


def _type_name(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _label_value(text: str) -> str:
    """A Prometheus label value: backslash, quote and newline escaped."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _body(route: str) -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        what = "no JSON" if body is None else _type_name(body)
        raise BadRequest(f"{route} takes a JSON object, got {what}")
    return body


def _field(body: dict, name: str, kinds: tuple, required: bool = False):
    value = body.get(name)
    if value is None or required and isinstance(value, str) and not value.strip():
        if required:
            raise BadRequest(f"'{name}' is {'missing' if value is None else 'empty'}")
        return None
    if not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:
        raise BadRequest(f"'{name}' must be {' or '.join(_type_name(k()) for k in kinds)}, got {_type_name(value)}")
    return value


def _tasks(body: dict) -> list[dict]:
    tasks = _field(body, "tasks", (list,)) or []
    for index, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise BadRequest(f"task {index} of 'tasks' must be an object, got {_type_name(task)}")
    return tasks


def create_app(service: AnalysisService) -> Flask:
    app = Flask("empathic")
    settings = service.settings
    extra_params: dict[str, str] = {}

    @app.before_request
    def basic_auth():
        if not (settings.basic_auth_user and settings.basic_auth_pass):
            return None
        auth = request.authorization
        if (auth is None or not hmac.compare_digest(auth.username or "", settings.basic_auth_user)
                or not hmac.compare_digest(auth.password or "", settings.basic_auth_pass)):
            return Response("authentication required", 401, {"WWW-Authenticate": 'Basic realm="empathic"'})
        return None

    @app.errorhandler(BadRequest)
    def bad_request(error: BadRequest):
        return jsonify(status="error", error=str(error)), 400

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        if isinstance(error, HTTPException):  # 404, 405 and the like, as Flask answers them
            return error
        log.exception("%s %s failed", request.method, request.path)
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return jsonify(status="error", error=f"{type(error).__name__}: {first}".rstrip(": ")), 500

    @app.get("/")
    @app.get("/health")
    def health():
        return jsonify(status="UP", model_class=EmpathicBackend.__name__, model_version=settings.model_version)

    @app.post("/setup")
    def setup():
        body = _body("/setup")
        project = _project_id(body.get("project"))
        schema = _field(body, "schema", (str,), required=True)
        try:
            EmpathicBackend(project, schema, service=service)
        except ConfigError as exc:
            return jsonify(status="error", error=str(exc)), 400
        if body.get("extra_params") is not None:
            # Kept as text: upstream's server failed with a 500 on a JSON object here.
            extra = body["extra_params"]
            extra_params[project] = extra if isinstance(extra, str) else json.dumps(extra)
        return jsonify(model_version=settings.model_version)

    @app.post("/predict")
    def predict():
        body = _body("/predict")
        tasks = _tasks(body)
        label_config = _field(body, "label_config", (str,), required=True)
        params = dict(_field(body, "params", (dict,)) or {})
        context = params.pop("context", None) or None
        # Label Studio sends login and password here; names the model's own arguments take are dropped.
        params = {k: v for k, v in params.items() if k.isidentifier() and k not in ("tasks", "context", "defer")}
        project = _project_id(body.get("project"))
        started = time.perf_counter()
        try:
            backend = EmpathicBackend(project, label_config, service=service)
            results = backend.predict(tasks, context=context, defer=True, **params)
        except ConfigError as exc:
            log.error("project %s: %s", project or "?", exc)
            return jsonify(status="error", error=str(exc)), 400
        service.count("predict_requests")
        service.count("predict_seconds", time.perf_counter() - started)
        return jsonify(results=results)

    @app.post("/webhook")
    def webhook():
        body = _body("/webhook")
        action = _field(body, "action", (str,))
        if action in FEEDBACK_EVENTS and isinstance(body.get("annotation") or body.get("annotations"), (dict, list)):
            service.feedback.submit(action, body, service.label_studio_api, settings.model_version)
        if action not in TRAIN_EVENTS:
            return jsonify(status="Unknown event"), 200
        project = _field(body, "project", (dict,)) or {}
        backend = EmpathicBackend(_project_id(project.get("id")), None, service=service)
        return jsonify(status="ok", result=backend.fit(action, body)), 201

    @app.errorhandler(QueueUnreachable)
    def queue_unreachable(error: QueueUnreachable):
        return jsonify(status="error", error=str(error)), 503

    @app.get("/jobs")
    def jobs():
        project = request.args.get("project")
        with _queue_errors(settings):
            return jsonify(jobs=[info.to_dict() for info in service.jobs.list(project)])

    @app.get("/jobs/<job_id>")
    def job(job_id: str):
        with _queue_errors(settings):
            info = service.jobs.get(job_id)
        if info is None:
            return jsonify(status="error", error=f"no job {job_id}"), 404
        return jsonify(info.to_dict())

    @app.get("/versions")
    def versions():
        return jsonify(versions=[settings.model_version], model_version=settings.model_version)

    live_streams = LiveStreams(service)

    @app.errorhandler(LiveRefused)
    def live_refused(error: LiveRefused):
        return jsonify(status="error", error=str(error)), error.status

    @app.get("/live")
    def live_page():
        if not settings.live_enabled:
            raise LiveRefused(403, "live sessions are off on this server (set LIVE=true to allow them)")
        return Response(LIVE_PAGE, mimetype="text/html")

    @app.get("/live/events")
    def live_events():
        feed = live_streams.open(request.args)
        # No buffering on the way (nginx honours X-Accel-Buffering), no caching of a live feed.
        return Response(feed, mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/metrics")
    def metrics():
        return Response(prometheus_text(service), mimetype="text/plain; version=0.0.4")

    return app


def prometheus_text(service: AnalysisService) -> str:
    counters = dict(service.counters)
    cache = service.cache.stats()
    lines = []

    def metric(name: str, kind: str, help_text: str, value: float) -> None:
        lines.extend([f"# HELP empathic_{name} {help_text}", f"# TYPE empathic_{name} {kind}",
                      f"empathic_{name} {float(value):g}"])

    metric("predict_requests_total", "counter", "POST /predict calls answered", counters.get("predict_requests", 0))
    metric("predictions_total", "counter", "task predictions made", counters.get("predictions", 0))
    metric("failed_tasks_total", "counter", "tasks that got no prediction", counters.get("failed_tasks", 0))
    metric("inference_seconds_total", "counter", "seconds spent running the models",
           counters.get("inference_seconds", 0.0))
    metric("predict_seconds_total", "counter", "seconds spent answering /predict", counters.get("predict_seconds", 0.0))
    for kind in ("face", "voice", "evidence"):
        metric(f"{kind}_cache_hits_total", "counter", f"{kind} analyses served from the cache",
               counters.get(f"{kind}_cache_hits", 0))
        metric(f"{kind}_cache_misses_total", "counter", f"{kind} analyses computed",
               counters.get(f"{kind}_cache_misses", 0))
    metric("linking_seconds_total", "counter", "seconds spent gathering the evidence for person linking",
           counters.get("linking_seconds", 0.0))
    metric("deferred_tasks_total", "counter", "tasks handed to background jobs", counters.get("deferred_tasks", 0))
    metric("tasks_without_transcripts_total", "counter", "tasks predicted without the transcripts their config "
           "asks for (the ASR model is missing)", counters.get("tasks_without_transcripts", 0))
    metric("tasks_without_speakers_total", "counter", "tasks predicted with VAD segments instead of speaker turns "
           "(the diarization pipeline is missing)", counters.get("tasks_without_speakers", 0))
    metric("task_fields_written_total", "counter", "task fields filled in through Label Studio's API (the frame "
           "rate a Video tag reads)", counters.get("task_fields_written", 0))
    metric("task_field_write_failures_total", "counter", "task fields that could not be written",
           counters.get("task_field_write_failures", 0))
    metric("live_sessions_total", "counter", "live sessions started (GET /live/events)", counters.get("live_sessions", 0))
    metric("live_sessions_running", "gauge", "live sessions running now", counters.get("live_sessions_running", 0))
    metric("live_events_dropped_total", "counter", "live events a slow client did not read in time",
           counters.get("live_events_dropped", 0))
    feedback = service.feedback.totals()
    lines.extend(["# HELP empathic_suggestions what annotators did with the suggested regions (kept, edited, "
                  "deleted; added: regions of their own), by the region's label, from Label Studio's annotation "
                  "webhooks", "# TYPE empathic_suggestions gauge"])
    for label, counts in feedback.per_label:
        lines.extend(f'empathic_suggestions{{outcome="{outcome}",label="{_label_value(label)}"}} {count}'
                     for outcome, count in counts)
    lines.extend(["# HELP empathic_suggestions_overall the same over all labels; edited ones also as moved "
                  "and/or relabelled", "# TYPE empathic_suggestions_overall gauge"])
    lines.extend(f'empathic_suggestions_overall{{outcome="{outcome}"}} {getattr(feedback, outcome)}'
                 for outcome in ("kept", "edited", "moved", "relabelled", "deleted", "added"))
    metric("feedback_annotations_total", "counter", "annotation webhooks compared with their prediction",
           counters.get("feedback_annotations", 0))
    metric("feedback_unreadable_total", "counter", "annotation webhooks that could not be compared (no "
           "prediction, unreadable result)", counters.get("feedback_unreadable", 0))
    refusals = sorted((k.split(":", 1)[1], v) for k, v in counters.items() if k.startswith("media_refused:"))
    lines.extend(["# HELP empathic_media_refused_total media values refused by the media rules, by reason",
                  "# TYPE empathic_media_refused_total counter"])
    lines.extend(f'empathic_media_refused_total{{reason="{reason}"}} {count:g}' for reason, count in refusals)
    if service.jobs_started:
        jobs = service.jobs
        try:
            queued, counts = jobs.queued(), jobs.counts()
        except Exception as exc:  # Redis down: the metrics still answer, and say so
            log.warning("job queue unreachable for /metrics: %s", exc)
            metric("queue_reachable", "gauge", "whether the job queue (Redis) answered", 0)
        else:
            metric("queue_reachable", "gauge", "whether the job queue (Redis) answered", 1)
            metric("queue_length", "gauge", "jobs waiting for a worker", queued)
            lines.extend(["# HELP empathic_jobs jobs by state", "# TYPE empathic_jobs gauge"])
            lines.extend(f'empathic_jobs{{state="{state}"}} {count}' for state, count in counts.items())
    if cache.get("entries") is not None:
        metric("cache_entries", "gauge", "analyses held by the in-process cache", cache["entries"])
    return "\n".join(lines) + "\n"
