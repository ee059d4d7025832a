"""The backend's settings, read once from the environment and validated (pydantic)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, field_validator

from .. import __version__

ENVIRONMENT = {
    # setting: environment variable
    "label_studio_url": "LABEL_STUDIO_URL",
    "label_studio_api_key": "LABEL_STUDIO_API_KEY",
    "redis_url": "REDIS_URL",
    "cache_ttl_s": "CACHE_TTL_S",
    "memory_cache_mb": "MEMORY_CACHE_MB",
    "media_cache_dir": "MEDIA_CACHE_DIR",
    "media_cache_gb": "MEDIA_CACHE_GB",
    "local_files_root": "LOCAL_FILES_DOCUMENT_ROOT",
    "model_version": "MODEL_VERSION",
    "basic_auth_user": "BASIC_AUTH_USER",
    "basic_auth_pass": "BASIC_AUTH_PASS",
    "device": "DEVICE",
    "precision": "PRECISION",
    "head_precision": "HEAD_PRECISION",
    "voice_attributes": "VOICE_ATTRIBUTES",
    "head_cache_dir": "HEAD_CACHE_DIR",
    "face_model_size": "FACE_MODEL_SIZE",
    "voice_model_size": "VOICE_MODEL_SIZE",
    "voice_encoder": "VOICE_ENCODER",
    "face_pps": "FACE_PPS",
    "voice_pps": "VOICE_PPS",
    "segmentation": "SEGMENTATION",
    "detector": "DETECTOR",
    "haar_search": "HAAR_SEARCH",
    "diarization_pipeline": "DIARIZATION_PIPELINE",
    "weights_dir": "EMPATHIC_WEIGHTS_DIR",
    "model_revisions": "MODEL_REVISIONS",
    "verify_weights": "VERIFY_WEIGHTS",
    "gpu_concurrency": "GPU_CONCURRENCY",
    "asr_model": "ASR_MODEL",
    "inline_budget_s": "INLINE_BUDGET_S",
    "inline_rate": "INLINE_RATE",
    "queue_name": "QUEUE_NAME",
    "job_retries": "JOB_RETRIES",
    "job_timeout_s": "JOB_TIMEOUT_S",
    "language": "ASR_LANGUAGE",
    "write_frame_rate": "WRITE_FRAME_RATE",
    "persons": "PERSONS",
    "allowed_media_hosts": "ALLOWED_MEDIA_HOSTS",
    "media_roots": "MEDIA_ROOTS",
    "max_media_gb": "MAX_MEDIA_GB",
    "max_media_duration_s": "MAX_MEDIA_DURATION_S",
    "max_frame_pixels": "MAX_FRAME_PIXELS",
    "media_timeout_s": "MEDIA_TIMEOUT_S",
    "delivery_timeout_s": "DELIVERY_TIMEOUT_S",
    "fusion_grid_s": "FUSION_GRID_S",
    "face_weight": "FACE_WEIGHT",
    "voice_weight": "VOICE_WEIGHT",
    "live_enabled": "LIVE",
    "live_max_sessions": "LIVE_MAX_SESSIONS",
    "live_max_s": "LIVE_MAX_S",
    "live_pps": "LIVE_PPS",
    "live_window_s": "LIVE_WINDOW_S",
    "live_hop_s": "LIVE_HOP_S",
}


class SettingsError(ValueError):
    """An environment variable holds a value the backend cannot use."""


class BackendSettings(BaseModel):
    label_studio_url: str | None = None
    label_studio_api_key: str | None = Field(default=None, repr=False)
    redis_url: str | None = None
    cache_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)
    memory_cache_mb: int = Field(default=256, gt=0)
    media_cache_dir: Path = Path(tempfile.gettempdir()) / "empathic-media"
    media_cache_gb: float = Field(default=20.0, gt=0)
    local_files_root: Path | None = None
    model_version: str = f"empathic-{__version__}"
    basic_auth_user: str | None = None
    basic_auth_pass: str | None = Field(default=None, repr=False)
    device: str = "auto"
    precision: str = "auto"
    head_precision: str = Field(default="auto", pattern="^(auto|fp32|bf16|fp16|int8)$")  # voice heads
    # Attribute heads loaded beside the 40 emotions: all, none, or a comma-separated list of ids
    # (a labeling config's Number control needs its attribute).
    voice_attributes: str = "all"
    head_cache_dir: str = "~/.cache/empathic/heads"  # a stacked copy of the voice heads; "off": none
    face_model_size: str = Field(default="small", pattern="^(small|large)$")
    voice_model_size: str = Field(default="small", pattern="^(small|large|plus)$")
    # auto: each model's own encoder (EmoWhisper under Voice-Small/-Large, BUD-E-Whisper under Voice-Plus)
    voice_encoder: str = Field(default="auto", pattern="^(auto|emowhisper|bud-e-whisper)$")
    face_pps: float = Field(default=1.0, gt=0)
    voice_pps: float = Field(default=0.2, gt=0)
    segmentation: str = Field(default="fixed", pattern="^(fixed|vad|diarization|scene)$")
    detector: str = "haar"
    haar_search: str = Field(default="local", pattern="^(local|exhaustive)$")  # see faces/haar_local.py
    diarization_pipeline: str | None = None
    weights_dir: Path | None = None
    # Revisions instead of the registry's pins, comma-separated ORG/NAME@REVISION (a branch, a tag or
    # a commit hash), e.g. laion/Empathic-Insight-Voice-Small@5e697df7fd75fc594c208d3713d403d08f6365ec.
    model_revisions: str = ""
    # Hash the weight files whose SHA256 is published (registry.PUBLISHED_CHECKSUMS) before loading
    # them, and refuse any that differs; about a second per GB, once per process.
    verify_weights: bool = False
    gpu_concurrency: int = Field(default=1, ge=1)
    asr_model: str = "openai/whisper-small"  # fills per-region TextAreas on audio
    # /predict computes a task itself only when its estimated cost fits in this many seconds (Label
    # Studio gives up after ML_TIMEOUT_PREDICT, 100 s by default); the rest become background jobs.
    inline_budget_s: float = Field(default=60.0, ge=0)
    inline_rate: float = Field(default=2.0, gt=0)  # assumed seconds of work per media second, until measured
    queue_name: str = "empathic"
    job_retries: int = Field(default=2, ge=0)
    # A job running longer is stopped and retried; a worker that dies is noticed this long (+60 s)
    # after it took the job, and its job goes back to the queue.
    job_timeout_s: int = Field(default=6 * 3600, gt=0)
    language: str | None = None  # None: Whisper detects the language of each segment
    # A Video tag whose frameRate reads a task field ("$fps") that the task lacks (uploads and storage
    # syncs fill only the media field): write the file's frame rate into the task, so that the editor
    # and the prediction count frames alike. Off: both use Label Studio's default of 24.
    write_frame_rate: bool = True
    # auto: where a config has a Video with face tracks and an Audio of the same media, voice
    # segments are linked to the face speaking them and emotions fused per person; off: never.
    persons: str = Field(default="auto", pattern="^(auto|off)$")
    fusion_grid_s: float = Field(default=1.0, gt=0)
    # Where media may come from and how large it may be (see media_policy and the README's security
    # section): plain URLs only to Label Studio and these hosts, local paths only under these folders.
    allowed_media_hosts: str = ""  # comma-separated host, host:port or *.example.org
    media_roots: str = ""  # comma-separated folders; LOCAL_FILES_DOCUMENT_ROOT counts as one
    max_media_gb: float = Field(default=10.0, gt=0)
    max_media_duration_s: float = Field(default=4 * 3600.0, gt=0)
    max_frame_pixels: int = Field(default=7680 * 4320, gt=0)  # 8K
    media_timeout_s: float = Field(default=30.0, gt=0)  # a media server silent this long fails the task
    # How long a worker keeps trying to post a finished prediction while Label Studio is down or
    # failing, before the job fails (and RQ's retries run it again, from the cache).
    delivery_timeout_s: float = Field(default=600.0, ge=0)
    face_weight: float = Field(default=1.0, ge=0)
    voice_weight: float = Field(default=1.0, ge=0)
    # Live sessions (GET /live/events): off unless LIVE=true; sources pass the media rules.
    live_enabled: bool = False
    live_max_sessions: int = Field(default=2, ge=1)
    live_max_s: float = Field(default=4 * 3600.0, gt=0)  # a session is stopped after this long
    live_pps: float = Field(default=2.0, gt=0, le=30)
    live_window_s: float = Field(default=10.0, gt=0, le=30)
    live_hop_s: float = Field(default=3.0, gt=0)

    @field_validator("model_revisions")
    @classmethod
    def _revisions(cls, value: str) -> str:
        from ..registry import parse_revision_choices

        parse_revision_choices(item for item in value.split(",") if item.strip())  # one line per mistake
        return value

    @field_validator("label_studio_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

    def face_options(self, pps: float):
        """The face analysis options of this server at ``pps`` (a task's own or a live session's)."""
        from ..face_analysis import FaceAnalysisOptions
        from ..faces.detect import DetectorOptions

        return FaceAnalysisOptions(pps=pps, detector=self.detector,
                                   detection=DetectorOptions(haar_search=self.haar_search))

    def voice_attribute_ids(self) -> tuple[str, ...] | None:
        """None: every attribute head; () none; else these ids."""
        from ..models.voice import attribute_selection

        return attribute_selection(self.voice_attributes)

    def revision_choices(self):
        """MODEL_REVISIONS as registry.RevisionChoices (every item names its repository here: one
        backend serves face and voice models alike)."""
        from ..registry import parse_revision_choices

        return parse_revision_choices(item for item in self.model_revisions.split(",") if item.strip())

    def weight_sources(self):
        from ..hub import WeightSources

        return WeightSources(weights_root=self.weights_dir, verify_checksums=self.verify_weights)

    def head_cache(self) -> Path | None:
        from ..models.head_stack import head_cache_dir

        return head_cache_dir(self.head_cache_dir)

    def media_policy(self):
        from .media_policy import MediaPolicy

        roots = [Path(r.strip()) for r in self.media_roots.split(",") if r.strip()]
        if self.local_files_root is not None:
            roots.append(self.local_files_root)
        return MediaPolicy(label_studio_url=self.label_studio_url,
                           allowed_hosts=tuple(h for h in self.allowed_media_hosts.split(",") if h.strip()),
                           media_roots=tuple(roots), max_download_bytes=int(self.max_media_gb * 1e9))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "BackendSettings":
        environ = os.environ if environ is None else environ
        values = {key: environ[name] for key, name in ENVIRONMENT.items() if environ.get(name)}
        if "label_studio_api_key" not in values and environ.get("LABEL_STUDIO_ACCESS_TOKEN"):
            values["label_studio_api_key"] = environ["LABEL_STUDIO_ACCESS_TOKEN"]
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(f"{ENVIRONMENT.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}"
                                 for e in exc.errors())
            raise SettingsError(f"bad backend settings: {problems}") from None
