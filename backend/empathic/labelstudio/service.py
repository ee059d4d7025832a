"""One process's models, cache and media fetcher, shared by every request.

Models load lazily, once, on the first task that needs them (never in ``/setup``); one semaphore
keeps concurrent requests from running models on the GPU at the same time. Analyses are cached by
media content, model weights and analysis parameters (not labels: mapping comes afterwards).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from pathlib import Path

from .. import __version__
from ..audio import decode_audio, media_extent
from ..face_analysis import FaceAnalysisOptions, analyze_faces
from ..hub import MissingWeightsError, resolve_needs
from ..models.asr import asr_needs
from ..models.face import FaceEmotionModel
from ..models.runtime import Runtime, make_runtime
from ..models.voice import VoiceEmotionModel
from ..persons.evidence import AudioVisualEvidence, EvidenceOptions, gather_evidence
from ..results import FaceAnalysis, VoiceAnalysis
from ..segments.diarization import DiarizationOptions, diarization_needs
from ..voice_analysis import VoiceAnalysisOptions, analyze_voice, make_segmenter
from .cache import AnalysisCache, cache_key, make_cache, media_digest, model_identity
from .feedback import SuggestionFeedback
from .media_fetch import LabelStudioAccess, MediaFetcher
from .predictions import set_task_field
from .settings import BackendSettings

log = logging.getLogger(__name__)

GiB = 1024 ** 3
MiB = 1024 ** 2
OPTIONAL_RECHECK_S = 600.0  # how long a missing optional model counts as missing before looking again


class AnalysisService:
    def __init__(self, settings: BackendSettings, cache: AnalysisCache | None = None,
                 fetcher: MediaFetcher | None = None):
        self.settings = settings
        self.cache = cache or make_cache(settings.redis_url, memory_max_bytes=settings.memory_cache_mb * MiB,
                                         ttl_s=settings.cache_ttl_s)
        self.fetcher = fetcher or MediaFetcher(
            LabelStudioAccess(settings.label_studio_url, settings.label_studio_api_key),
            Path(settings.media_cache_dir), max_cache_bytes=int(settings.media_cache_gb * GiB),
            local_files_root=settings.local_files_root, timeout_s=settings.media_timeout_s,
            policy=settings.media_policy())
        self.sources = settings.weight_sources()
        self.revisions = settings.revision_choices()  # MODEL_REVISIONS over the registry's pins
        self._runtime: Runtime | None = None
        self._models: dict[tuple, object] = {}
        self._identities: dict[tuple, object] = {}
        self._load_lock = threading.Lock()
        self._device_slots = threading.BoundedSemaphore(settings.gpu_concurrency)
        self.counters: Counter = Counter()
        self._counter_lock = threading.Lock()
        self._rates: dict[str, float] = {}
        self._file_facts: dict[tuple, object] = {}  # per file version: its digest, its extent
        self._jobs = None
        self._label_studio_api = None
        self._warned: set[str] = set()
        self._required_found: set[tuple] = set()
        self._optional_checks: dict[tuple, tuple[float, bool]] = {}
        self.feedback = SuggestionFeedback(self.count)

    def count(self, name: str, amount: float = 1) -> None:
        with self._counter_lock:
            self.counters[name] += amount

    def count_refusal(self, reason: str) -> None:
        self.count(f"media_refused:{reason}")

    def media_extent(self, path: Path) -> tuple[float, int, int]:
        """(duration, width, height) from the headers, remembered per file version like the digest."""
        return self._per_file_version("extent", path, media_extent)

    def warn_once(self, key: str, message: str, *args) -> None:
        """A warning logged once per process (a missing optional model would otherwise flood the log)."""
        with self._counter_lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.warning(message, *args)

    def require_models(self, face_size: str | None, voice_size: str | None) -> None:
        """Find the face and voice models a task needs together, so that one error names every
        missing repository and the one command that fetches them all (found once, remembered)."""
        key = (face_size, voice_size, self.settings.voice_encoder)
        if key in self._required_found:
            return
        needs = FaceEmotionModel.needs(face_size, self.revisions) if face_size else ()
        if voice_size:
            needs += VoiceEmotionModel.needs(voice_size, self.settings.voice_encoder, self.revisions)
        resolve_needs(needs, self.sources)
        with self._counter_lock:
            self._required_found.add(key)

    def optional_model_available(self, part: str, needs) -> bool:
        """Whether an optional part's model (transcripts, speaker turns) is there. A missing one is
        named once per process with the command that fetches it, and looked for again every
        OPTIONAL_RECHECK_S, so that fetching it needs no restart."""
        needs = tuple(needs)
        key = (part, tuple(need.ref for need in needs))
        now = time.monotonic()
        with self._counter_lock:
            checked = self._optional_checks.get(key)
        if checked is not None and (checked[1] or now - checked[0] < OPTIONAL_RECHECK_S):
            return checked[1]
        try:
            resolve_needs(needs, self.sources)
            available = True
        except MissingWeightsError as exc:
            available = False
            self.warn_once(f"missing-{part}", "predicting without %s until its model is fetched: %s", part, exc)
        with self._counter_lock:
            self._optional_checks[key] = (now, available)
        return available

    @property
    def label_studio_api(self):
        """Label Studio's REST API with the backend's key, or None without LABEL_STUDIO_URL and a key."""
        settings = self.settings
        if not (settings.label_studio_url and settings.label_studio_api_key):
            return None
        with self._load_lock:
            if self._label_studio_api is None:
                from .label_studio_api import LabelStudioApi

                self._label_studio_api = LabelStudioApi(
                    LabelStudioAccess(settings.label_studio_url, settings.label_studio_api_key))
            return self._label_studio_api

    def record_task_field(self, task_id, data: dict, field_path: str, value) -> dict | None:
        """Write ``value`` into the task's data at ``field_path`` (its other fields unchanged) through
        Label Studio's API: the task's new data, or None, with the reason logged, where that fails."""
        api = self.label_studio_api
        if api is None or task_id is None:
            self.warn_once("no-task-writes", "cannot write %r into tasks: the backend needs LABEL_STUDIO_URL and "
                           "LABEL_STUDIO_API_KEY for that", field_path)
            return None
        updated = set_task_field(data, field_path, value)
        try:
            api.update_task_data(task_id, updated)
        except Exception as exc:  # the prediction still follows the editor's clock without it
            self.count("task_field_write_failures")
            log.warning("task %s: could not write %s=%r into the task (%s)", task_id, field_path, value, exc)
            return None
        self.count("task_fields_written")
        log.info("task %s: wrote %s=%r into the task", task_id, field_path, value)
        return updated

    @property
    def runtime(self) -> Runtime:
        # Made on first use: CUDA must not be initialised in a gunicorn master before it forks.
        if self._runtime is None:
            self._runtime = make_runtime(self.settings.device, self.settings.precision)
        return self._runtime

    def _model(self, key: tuple, load):
        with self._load_lock:
            if key not in self._models:
                started = time.perf_counter()
                self._models[key] = load()
                log.info("loaded %s model %s in %.1f s", key[0], "/".join(key[1:]), time.perf_counter() - started)
            return self._models[key]

    def _identity(self, key: tuple, describe):
        with self._load_lock:
            if key not in self._identities:
                self._identities[key] = describe()
            return self._identities[key]

    def _digest(self, path: Path) -> str:
        """The media's content hash, remembered per file version: a task is looked up in the cache
        before it is computed, and hashing an hour of video takes seconds."""
        return self._per_file_version("digest", path, media_digest)

    def _per_file_version(self, kind: str, path: Path, compute):
        """``compute(path)``, remembered for this version of the file (its path, size and time)."""
        stat = Path(path).stat()
        version = (kind, str(path), stat.st_size, stat.st_mtime_ns)
        with self._counter_lock:
            known = self._file_facts.get(version)
        if known is None:
            known = compute(path)
            with self._counter_lock:
                if len(self._file_facts) >= 4096:
                    self._file_facts.clear()
                self._file_facts[version] = known
        return known

    def _cached(self, kind: str, key: str, from_cache):
        document = self.cache.get(key)
        if document is not None:
            try:
                analysis = from_cache(document)
                self.count(f"{kind}_cache_hits")
                return analysis
            except ValueError as exc:
                log.warning("cached %s analysis %s is unusable (%s); computing it again", kind, key[:12], exc)
        return None

    def seconds_per_media_second(self, kind: str) -> float:
        """The cost of an analysis per second of media, learned from this process's own runs (an
        exponential moving average), starting from INLINE_RATE before any run."""
        with self._counter_lock:
            return self._rates.get(kind, self.settings.inline_rate)

    def _learn_rate(self, kind: str, seconds: float, media_seconds: float) -> None:
        if media_seconds <= 0:
            return
        rate = seconds / media_seconds
        with self._counter_lock:
            previous = self._rates.get(kind)
            self._rates[kind] = rate if previous is None else 0.7 * previous + 0.3 * rate

    def analyze_face(self, path: Path, options: FaceAnalysisOptions, size: str, hook=None,
                     cached_only: bool = False) -> FaceAnalysis | None:
        info = self._identity(("face", size), lambda: FaceEmotionModel.describe(
            *FaceEmotionModel.locate(size, self.sources, self.revisions), self.runtime))
        key = cache_key(self._digest(path), "face", model_identity(info),
                        options.as_parameters() + (("analysis_version", __version__),))
        analysis = self._cached("face", key, FaceAnalysis.from_cache)
        if analysis is None and not cached_only:
            self.count("face_cache_misses")
            model = self._model(("face", size), lambda: self._load_face(size))
            started = time.perf_counter()
            with self._device_slots:
                analysis = analyze_faces(path, model, options, hook=hook)
            elapsed = time.perf_counter() - started
            self.count("inference_seconds", elapsed)
            self._learn_rate("face", elapsed, analysis.media["duration_s"])
            self.cache.put(key, analysis.to_cache())
        return analysis

    def analyze_voice(self, path: Path, options: VoiceAnalysisOptions, size: str,
                      transcribe: bool = False, hook=None, cached_only: bool = False) -> VoiceAnalysis | None:
        encoder = self.settings.voice_encoder
        heads = self.settings.head_precision
        info = self._identity(("voice", size, encoder), lambda: VoiceEmotionModel.describe(
            *VoiceEmotionModel.locate(size, self.sources, encoder, self.revisions), self.runtime, heads))
        parameters = options.as_parameters() + (("analysis_version", __version__),)
        attributes = self.settings.voice_attribute_ids()
        if attributes is not None:  # an analysis with fewer attribute heads is another analysis
            parameters += (("voice_attributes", ",".join(attributes) or "none"),)
        if transcribe:
            parameters += (("transcription_model", self.settings.asr_model),
                           ("transcription_language", self.settings.language or "auto"))
        key = cache_key(self._digest(path), "voice", model_identity(info), parameters)
        analysis = self._cached("voice", key, VoiceAnalysis.from_cache)
        if analysis is None and not cached_only:
            self.count("voice_cache_misses")
            model = self._model(("voice", size, encoder),
                                lambda: self._load_voice(size))
            segmenter = make_segmenter(options, path, sources=self.sources, device=str(self.runtime.device))
            transcriber = None
            if transcribe:
                from ..models.asr import Transcriber

                transcriber = self._model(("asr", self.settings.asr_model, self.settings.language or "auto"),
                                          lambda: Transcriber.load(self.settings.asr_model, self.sources,
                                                                   self.runtime, language=self.settings.language))
            started = time.perf_counter()
            with self._device_slots:
                analysis = analyze_voice(path, model, options, hook=hook, segmenter=segmenter,
                                         transcriber=transcriber)
            elapsed = time.perf_counter() - started
            self.count("inference_seconds", elapsed)
            self._learn_rate("voice", elapsed, analysis.media["duration_s"])
            self.cache.put(key, analysis.to_cache())
        return analysis

    def audio_visual_evidence(self, path: Path, face: FaceAnalysis, voice: VoiceAnalysis,
                              options: EvidenceOptions, hook=None) -> AudioVisualEvidence:
        """The mouth motion and voice quality person linking reads, cached like the analyses (keyed
        by the media, both analyses' models and parameters): changing linking or fusion settings
        later needs neither inference nor decoding."""
        parameters = (("face", dict(face.parameters)), ("voice", dict(voice.parameters)),
                      ("segmentation", voice.segmentation_mode)) + options.as_parameters() \
            + (("analysis_version", __version__),)
        key = cache_key(self._digest(path), "evidence",
                        {"face": model_identity(face.model), "voice": model_identity(voice.model)}, parameters)
        evidence = self._cached("evidence", key, AudioVisualEvidence.from_cache)
        if evidence is None:
            self.count("evidence_cache_misses")
            started = time.perf_counter()
            evidence = gather_evidence(path, face, voice, decode_audio(path), options, hook=hook)
            self.count("linking_seconds", time.perf_counter() - started)
            self.cache.put(key, evidence.to_cache())
        return evidence

    def check_models(self) -> None:
        """Find the configured face and voice models all at once (one error names every missing
        one); a missing optional model (ASR, the diarization pipeline when SEGMENTATION asks for
        it) is named in a warning but stops nothing."""
        settings = self.settings
        self.require_models(settings.face_model_size, settings.voice_model_size)
        self.optional_model_available("transcripts", asr_needs(settings.asr_model))
        if settings.segmentation == "diarization":
            pipeline = {"pipeline": settings.diarization_pipeline} if settings.diarization_pipeline else {}
            self.optional_model_available("speaker turns", diarization_needs(DiarizationOptions(**pipeline)))

    def preload(self) -> None:
        """Load the configured face and voice models now (a worker does, before its first job)."""
        self.check_models()
        settings = self.settings
        self._model(("face", settings.face_model_size), lambda: self._load_face(settings.face_model_size))
        self._model(("voice", settings.voice_model_size, settings.voice_encoder),
                    lambda: self._load_voice(settings.voice_model_size))

    def live_models(self, face: bool, voice: bool) -> tuple[FaceEmotionModel | None, VoiceEmotionModel | None]:
        """The configured models, loaded once and shared with the predictions."""
        settings = self.settings
        self.require_models(settings.face_model_size if face else None, settings.voice_model_size if voice else None)
        face_model = self._model(("face", settings.face_model_size),
                                 lambda: self._load_face(settings.face_model_size)) if face else None
        voice_model = self._model(("voice", settings.voice_model_size, settings.voice_encoder),
                                  lambda: self._load_voice(settings.voice_model_size)) if voice else None
        return face_model, voice_model

    def _load_face(self, size: str) -> FaceEmotionModel:
        return FaceEmotionModel.load(size, self.sources, self.runtime, self.revisions)

    def _load_voice(self, size: str) -> VoiceEmotionModel:
        settings = self.settings
        return VoiceEmotionModel.load(size, self.sources, self.runtime, encoder=settings.voice_encoder,
                                      head_precision=settings.head_precision,
                                      attributes=settings.voice_attribute_ids(), head_cache=settings.head_cache(),
                                      revisions=self.revisions)

    @property
    def jobs_started(self) -> bool:
        return self._jobs is not None

    @property
    def jobs(self):
        """The background job queue: RQ on REDIS_URL, else a thread in this process (made on first use)."""
        with self._load_lock:
            if self._jobs is None:
                from .jobs import LocalJobQueue, RQJobQueue

                self._jobs = (RQJobQueue(self.settings)
                              if self.settings.redis_url else LocalJobQueue(self))
            return self._jobs
