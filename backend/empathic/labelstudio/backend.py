"""The model class, shaped like upstream's ``LabelStudioMLBase`` (``setup``, ``predict``, ``fit``).

A new instance serves each request, as upstream's server does; everything heavy lives in the shared
``AnalysisService``. One task that fails never spoils the batch: it gets no prediction (an empty
list in its place, which Label Studio stores as nothing), is logged with its id and the reason, and
is therefore tried again on the next "Retrieve predictions".
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace

from ..audio import media_duration_s
from .media_fetch import MediaFetchError
from ..face_analysis import FaceAnalysisOptions
from ..models.asr import asr_needs
from ..persons.analysis import analyze_persons
from ..persons.evidence import EvidenceOptions
from ..persons.fusion import FusionOptions
from ..persons.linking import make_linker
from ..segments.diarization import DiarizationOptions, diarization_needs
from ..segments.fixed import WindowOptions
from ..voice_analysis import VoiceAnalysisOptions
from .config import ObjectPlan, ProjectPlan, parse_config
from .jobs import job_payload
from .predictions import build_prediction, frame_rate_field, prediction_problems, task_field
from .service import AnalysisService

log = logging.getLogger(__name__)


class TaskError(ValueError):
    """A task cannot be predicted (missing media field, and the like)."""


@dataclass(frozen=True)
class VoicePlan:
    options: VoiceAnalysisOptions
    transcribe: bool
    left_out: tuple[str, ...]  # optional parts whose models are missing: "transcripts", "speakers"


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

    def predict(self, tasks: list[dict], context: dict | None = None, defer: bool = False, **kwargs) -> list:
        """One result per task, in order: a prediction, or ``[]`` (nothing stored) for a task that
        failed or, with ``defer``, one that became a background job because computing it would not
        fit in what is left of INLINE_BUDGET_S (the job's worker posts its prediction later)."""
        if self.plan is None:
            raise TaskError("no labeling config was given")
        deadline = time.monotonic() + self.service.settings.inline_budget_s
        results: list = []
        for task in tasks:
            try:
                found = self._analyses(task, cached_only=True) if defer else {}
                if defer and not self._fits(task, found, deadline):
                    info = self.service.jobs.submit(job_payload(self.project_id, self.label_config, task,
                                                                self.model_version))
                    self.service.count("deferred_tasks")
                    log.info("task %s of project %s goes to background job %s (%s)", task.get("id"),
                             self.project_id or "?", info.id, info.state)
                    results.append([])
                    continue
                results.append(self.predict_now(task, known=found))
                self.service.count("predictions")
            except Exception as exc:  # one bad task never spoils the batch
                self.service.count("failed_tasks")
                self.last_failure = _one_line(exc)
                log.error("task %s of project %s failed, no prediction stored (it will be tried again): %s",
                          task.get("id"), self.project_id or "?", _one_line(exc))
                results.append([])
        return results

    def _fits(self, task: dict, found: dict, deadline: float) -> bool:
        """Cached analyses always fit; otherwise the media's duration times the cost per media
        second this process has measured (INLINE_RATE until it has) must fit before the deadline."""
        if all(a is not None for a in found.values()):
            return True
        estimate = 0.0
        for kind, analysis in found.items():
            if analysis is None:
                obj = self.plan.video() if kind == "face" else self.plan.audio()
                duration = media_duration_s(self._media(task, obj))
                estimate += duration * self.service.seconds_per_media_second(kind)
        return time.monotonic() + estimate <= deadline

    def _analyses(self, task: dict, cached_only: bool = False, hook=None, known: dict | None = None,
                  voice_plan: "VoicePlan | None" = None) -> dict:
        """{kind: analysis} for the config's objects; ``known`` ones are reused, None where a
        ``cached_only`` lookup found nothing. Every required model is found first, all at once."""
        settings = self.service.settings
        analyses: dict = {k: v for k, v in (known or {}).items() if v is not None}
        video, audio = self.plan.video(), self.plan.audio()
        face_size = (_first(video, "model_size") or settings.face_model_size) if video is not None else None
        voice_size = (_first(audio, "model_size") or settings.voice_model_size) if audio is not None else None
        self.service.require_models(face_size, voice_size)
        if video is not None and "face" not in analyses:
            analyses["face"] = self.service.analyze_face(
                self._media(task, video), self._face_options(video), face_size, hook=hook, cached_only=cached_only)
        if audio is not None and "voice" not in analyses:
            voice_plan = voice_plan or self._voice_plan(audio)
            analyses["voice"] = self.service.analyze_voice(
                self._media(task, audio), voice_plan.options, voice_size, transcribe=voice_plan.transcribe,
                hook=hook, cached_only=cached_only)
        return analyses

    def _voice_plan(self, audio: ObjectPlan) -> "VoicePlan":
        """The voice analysis the config asks for, less the optional parts whose models are missing:
        the emotions come without transcripts rather than not at all, and VAD segments stand in
        for speaker turns when the diarization pipeline is missing."""
        options = self._voice_options(audio)
        transcribe = audio.control("textarea") is not None
        left_out: list[str] = []
        if transcribe and not self.service.optional_model_available(
                "transcripts", asr_needs(self.service.settings.asr_model)):
            transcribe = False
            left_out.append("transcripts")
        if options.segmentation == "diarization" and not self.service.optional_model_available(
                "speaker turns", diarization_needs(options.diarization)):
            options = replace(options, segmentation="vad")
            left_out.append("speakers")
        return VoicePlan(options, transcribe, tuple(left_out))

    def _face_options(self, video: ObjectPlan) -> FaceAnalysisOptions:
        settings = self.service.settings
        return settings.face_options(_first(video, "pps") or settings.face_pps)

    def predict_now(self, task: dict, hook=None, known: dict | None = None) -> dict:
        """The prediction of one task, computed here if need be; raises when it cannot be made."""
        audio = self.plan.audio()
        voice_plan = self._voice_plan(audio) if audio is not None else None
        analyses = self._analyses(task, hook=hook, known=known, voice_plan=voice_plan)
        face, voice = analyses.get("face"), analyses.get("voice")
        persons, evidence = self._persons(task, face, voice, hook)
        data = self._data_with_frame_rate(task, face)
        prediction = build_prediction(self.plan, data, self.model_version, face=face, voice=voice, persons=persons,
                                      evidence=evidence)
        # An invalid region would make a strict Label Studio refuse the whole batch: check first.
        durations = [a.media["duration_s"] for a in (face, voice) if a is not None]
        problems = prediction_problems(prediction, max(durations) if durations else None)
        problems += self._interface().validate_prediction(prediction, return_errors=True) or []
        if problems:
            raise TaskError(f"the prediction would not be valid: {'; '.join(map(str, problems[:3]))}")
        for part in voice_plan.left_out if voice_plan is not None else ():
            self.service.count(f"tasks_without_{part}")
        return prediction

    def _persons(self, task: dict, face, voice, hook=None):
        """(persons, their evidence): who speaks each voice segment and the per-person fusion, where
        the config shows faces and voices of one media (PERSONS=auto), else (None, None); the
        evidence is cached, linking and fusion are cheap."""
        settings = self.service.settings
        if settings.persons == "off" or not self.plan.links_persons() or face is None or voice is None:
            return None, None
        evidence = self.service.audio_visual_evidence(self._media(task, self.plan.video()), face, voice,
                                                      EvidenceOptions(), hook=hook)
        fusion = FusionOptions(grid_s=settings.fusion_grid_s, face_weight=settings.face_weight,
                               voice_weight=settings.voice_weight)
        return analyze_persons(face, voice, evidence, make_linker(), fusion, shots_s=voice.shots_s,
                               hook=hook), evidence

    def _data_with_frame_rate(self, task: dict, face) -> dict:
        """The task data the prediction counts frames from. Where the Video tag's frameRate reads a
        field the task lacks (an upload or a storage sync fills only the media field), the file's
        frame rate is written into the task first (WRITE_FRAME_RATE), so that the editor counts
        frames at the file's rate too; otherwise both fall back to Label Studio's 24."""
        data = task.get("data") or {}
        video = self.plan.video()
        field_path = frame_rate_field(video) if video is not None else None
        fps = face.media.get("average_fps") if face is not None else None
        if field_path is None or task_field(data, field_path) is not None or not fps:
            return data
        if not self.service.settings.write_frame_rate:
            return data
        return self.service.record_task_field(task.get("id"), data, field_path, fps) or data

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
        try:
            path = self.service.fetcher.fetch(value, task_id=task.get("id"))
        except MediaFetchError as exc:
            if exc.refusal is not None:
                self.service.count_refusal(exc.refusal)
            raise
        self._check_limits(task, path)
        return path

    def _check_limits(self, task: dict, path) -> None:
        """MAX_MEDIA_DURATION_S and MAX_FRAME_PIXELS, from the container's headers, before any work."""
        settings = self.service.settings
        duration, width, height = self.service.media_extent(path)
        if duration > settings.max_media_duration_s:
            self.service.count_refusal("too_long")
            raise TaskError(f"task {task.get('id')}: the media lasts {duration:.0f} s, more than "
                            f"MAX_MEDIA_DURATION_S={settings.max_media_duration_s:g}")
        if width * height > settings.max_frame_pixels:
            self.service.count_refusal("frame_too_large")
            raise TaskError(f"task {task.get('id')}: the video's frames are {width}x{height} = {width * height} "
                            f"pixels, more than MAX_FRAME_PIXELS={settings.max_frame_pixels}")


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
