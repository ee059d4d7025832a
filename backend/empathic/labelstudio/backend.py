"""The model class, shaped like upstream's ``LabelStudioMLBase`` (``setup``, ``predict``, ``fit``).

A new instance serves each request, as upstream's server does; everything heavy lives in the shared
``AnalysisService``. One task that fails never spoils the batch: it gets no prediction (an empty
list in its place, which Label Studio stores as nothing), is logged with its id and the reason, and
is therefore tried again on the next "Retrieve predictions".
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

from ..face_analysis import FaceAnalysisOptions
from ..faces.detect import DetectorOptions
from ..segments.diarization import DiarizationOptions
from ..segments.fixed import WindowOptions
from ..voice_analysis import VoiceAnalysisOptions
from .config import ObjectPlan, ProjectPlan, parse_config
from .predictions import build_prediction, prediction_problems
from .service import AnalysisService

log = logging.getLogger(__name__)


class TaskError(ValueError):
    """A task cannot be predicted (missing media field, and the like)."""


def _first(obj: ObjectPlan, attribute: str):
    return next((getattr(c.settings, attribute) for c in obj.controls
                 if getattr(c.settings, attribute) is not None), None)


_default_service: AnalysisService | None = None
_default_lock = threading.Lock()


def default_service() -> AnalysisService:
    """The process-wide service, from the environment, for callers that construct the model class
    the way upstream's server does: ``EmpathicBackend(project_id=..., label_config=...)``."""
    global _default_service
    with _default_lock:
        if _default_service is None:
            from .settings import BackendSettings

            _default_service = AnalysisService(BackendSettings.from_env())
        return _default_service


class EmpathicBackend:
    def __init__(self, project_id: str | None = None, label_config: str | None = None,
                 service: AnalysisService | None = None):
        self.service = service or default_service()
        self.project_id = project_id or ""
        self.label_config = label_config
        self.plan: ProjectPlan | None = None
        self._label_interface = None
        self.last_failure: str | None = None  # the reason the last failing task gave
        self.setup()

    @property
    def model_version(self) -> str:
        return self.service.settings.model_version

    def setup(self) -> None:
        """Parses the labeling config (cheap); models are never loaded here."""
        if self.label_config:
            self.plan = parse_config(self.label_config)

    def fit(self, event, data, **kwargs) -> dict:
        return {"status": "this backend retrains nothing", "event": event}

    def predict(self, tasks: list[dict], context: dict | None = None, **kwargs) -> list:
        if self.plan is None:
            raise TaskError("no labeling config was given")
        results: list = []
        for task in tasks:
            try:
                results.append(self._predict_task(task))
                self.service.count("predictions")
            except Exception as exc:  # one bad task never spoils the batch
                self.service.count("failed_tasks")
                self.last_failure = _one_line(exc)
                log.error("task %s of project %s failed, no prediction stored (it will be tried again): %s",
                          task.get("id"), self.project_id or "?", _one_line(exc))
                results.append([])
        return results

    def _predict_task(self, task: dict) -> dict:
        data = task.get("data") or {}
        settings = self.service.settings
        face = voice = None
        face_options = None
        video, audio = self.plan.video(), self.plan.audio()
        if video is not None:
            path = self._media(task, video)
            face_options = FaceAnalysisOptions(pps=_first(video, "pps") or settings.face_pps,
                                               detector=settings.detector, detection=DetectorOptions())
            face = self.service.analyze_face(path, face_options, _first(video, "model_size") or settings.face_model_size)
        if audio is not None:
            path = self._media(task, audio)
            voice = self.service.analyze_voice(path, self._voice_options(audio),
                                               _first(audio, "model_size") or settings.voice_model_size,
                                               transcribe=audio.control("textarea") is not None)
        prediction = build_prediction(self.plan, data, self.model_version, face=face, voice=voice,
                                      face_pps=face_options.pps if face_options else 1.0)
        # An invalid region would make a strict Label Studio refuse the whole batch: check first.
        durations = [a.media["duration_s"] for a in (face, voice) if a is not None]
        problems = prediction_problems(prediction, max(durations) if durations else None)
        problems += self._interface().validate_prediction(prediction, return_errors=True) or []
        if problems:
            raise TaskError(f"the prediction would not be valid: {'; '.join(map(str, problems[:3]))}")
        return prediction

    def _interface(self):
        if self._label_interface is None:
            from label_studio_sdk.label_interface import LabelInterface

            self._label_interface = LabelInterface(self.label_config)
        return self._label_interface

    def _voice_options(self, audio: ObjectPlan) -> VoiceAnalysisOptions:
        settings = self.service.settings
        options = VoiceAnalysisOptions(segmentation=_first(audio, "segmentation") or settings.segmentation,
                                       windows=WindowOptions(pps=_first(audio, "pps") or settings.voice_pps))
        if settings.diarization_pipeline:
            options = replace(options, diarization=DiarizationOptions(pipeline=settings.diarization_pipeline))
        return options

    def _media(self, task: dict, obj: ObjectPlan):
        value = (task.get("data") or {}).get(obj.value_key)
        if not isinstance(value, str) or not value:
            raise TaskError(f"the task has no {obj.value_key!r} field for the <{obj.type.capitalize()}> "
                            f"named {obj.name!r}")
        return self.service.fetcher.fetch(value, task_id=task.get("id"))


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
