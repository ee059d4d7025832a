"""Speaker turns from a pyannote speaker-diarization pipeline, one segment per turn.

pyannote 4's pipelines return two diarizations; this uses the exclusive one (one speaker at a time,
overlaps given to the most likely speaker), because every segment is scored as one voice. The
default pipeline is gated on the hub: its weights come through huggingface_hub's cache like every
other model here (``HF_HUB_OFFLINE``, ``HF_TOKEN``), or from a local copy of the repository.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..audio import AudioClip
from ..hub import MissingWeightsError, ModelNeed, ResolvedRepo, WeightSources, resolve_needs
from ..progress import ProgressHook
from ..registry import RepoRef
from . import WHISPER_WINDOW_S, Segment, finalize

# pyannote.audio 4 sends usage telemetry (pipeline origin, audio durations) to pyannoteAI unless
# this is "false", and its telemetry module sets it to "true" when it is first imported: it must be
# set before then. setdefault leaves a user's explicit opt-in alone.
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")

DEFAULT_PIPELINE = "pyannote/speaker-diarization-community-1"
# main: the stored pages of pyannote/speaker-diarization-community-1 show only the short commit 3533c8c
# (https://huggingface.co/pyannote/speaker-diarization-community-1/blob/main/README.md); every output
# records the commit resolved ("diarization_revision").
PIPELINE_REVISION = "main"
# The repository also holds a README and images; these are what Pipeline.from_pretrained reads.
PIPELINE_PATTERNS = ("*.yaml", "*.bin", "*.npz", "*.safetensors")
# Same-speaker turns closer than this become one segment, and whatever lies between them (frame-level
# flicker to another label, a breath) joins it. With min_duration_off 0 pyannote splits a turn at
# every 17 ms frame; pauses between sentences (about 0.5 s and more) still separate segments.
MERGE_GAP_S = 0.25

_HUB_ID = re.compile(r"^[A-Za-z0-9_][\w.-]*/[A-Za-z0-9_][\w.-]*$")


@dataclass(frozen=True)
class DiarizationOptions:
    pipeline: str = DEFAULT_PIPELINE  # a folder holding config.yaml, or a hub repository id
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    min_duration_s: float = 0.5  # shorter turns are dropped
    max_duration_s: float = WHISPER_WINDOW_S  # longer turns are split into equal parts

    def __post_init__(self):
        pipeline = self.pipeline
        if not pipeline or not (Path(pipeline).expanduser().exists() or _HUB_ID.match(pipeline)):
            raise ValueError(f"diarization pipeline must be an existing folder holding config.yaml or "
                             f"a hub repository id (ORG/NAME), got {self.pipeline!r}")
        for name in ("num_speakers", "min_speakers", "max_speakers"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        low, high, num = self.min_speakers, self.max_speakers, self.num_speakers
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_speakers ({low}) is larger than max_speakers ({high})")
        if num is not None and ((low is not None and num < low) or (high is not None and num > high)):
            raise ValueError(f"num_speakers ({num}) contradicts min_speakers ({low}) / max_speakers ({high})")
        if self.min_duration_s < 0:
            raise ValueError(f"minimum segment duration must be >= 0, got {self.min_duration_s}")
        if not 0 < self.max_duration_s <= WHISPER_WINDOW_S:
            raise ValueError(f"maximum segment duration must be in (0, {WHISPER_WINDOW_S:g}] s (one "
                             f"Whisper window), got {self.max_duration_s}")
        if self.min_duration_s > self.max_duration_s:
            raise ValueError(f"minimum segment duration ({self.min_duration_s}) is larger than the "
                             f"maximum ({self.max_duration_s})")


class DiarizationSegmenter:
    def __init__(self, options: DiarizationOptions = DiarizationOptions(),
                 sources: WeightSources | None = None, device: str | torch.device = "cpu",
                 hook: ProgressHook | None = None):
        self.options = options
        self.hook = hook
        self.sources = sources or WeightSources()
        self.device = torch.device(device)
        self._pipeline = None
        self._resolved: ResolvedRepo | None = None

    def info(self) -> dict[str, str]:
        """Which pipeline ran: the hub commit actually resolved, or "local" for a folder."""
        if self._resolved is not None:
            return self._resolved.info()
        return {"repo": self.options.pipeline, "revision": "local", "requested_revision": "local"}

    def segment(self, audio: AudioClip) -> list[Segment]:
        duration = audio.duration_s
        if duration == 0 or duration < self.options.min_duration_s:
            return []  # no turn could be kept; pyannote also rejects a waveform of no samples
        pipeline = self._load()
        waveform = torch.from_numpy(np.ascontiguousarray(audio.samples, dtype=np.float32)).unsqueeze(0)
        with warnings.catch_warnings():
            # pyannote probes the embedding model's shortest input with a few samples, which makes
            # torch warn about a standard deviation over one frame on every first run.
            warnings.filterwarnings("ignore", message=r"std\(\): degrees of freedom", category=UserWarning)
            output = pipeline(
                {"waveform": waveform, "sample_rate": audio.sample_rate},
                num_speakers=self.options.num_speakers,
                min_speakers=self.options.min_speakers,
                max_speakers=self.options.max_speakers,
                hook=self._pyannote_hook() if self.hook else None,
            )
        # pyannote 4 returns DiarizeOutput; a pyannote 3 (or legacy=True) pipeline an Annotation.
        exclusive = getattr(output, "exclusive_speaker_diarization", None)
        annotation = output if exclusive is None else exclusive
        turns = []
        for turn, _, label in annotation.itertracks(yield_label=True):
            start, end = max(0.0, float(turn.start)), min(duration, float(turn.end))
            if end > start:  # the last chunk is padded, so turns can run past the end of the audio
                turns.append((start, end, _speaker_name(label)))
        segments = [Segment(a, b, s) for a, b, s in _merge_close(_one_at_a_time(turns), MERGE_GAP_S)]
        return finalize(segments, self.options.min_duration_s, self.options.max_duration_s)

    def _pyannote_hook(self):
        """pyannote reports each step (segmentation, embeddings...) as completed of total batches."""
        hook = self.hook

        def report(step_name, step_artifact, file=None, total=None, completed=None):
            if total is not None and completed is not None:
                hook(f"diarization {step_name}", int(completed), int(total))

        return report

    def _load(self):
        if self._pipeline is not None:
            return self._pipeline
        name = self.options.pipeline
        local = Path(name).expanduser()
        if not local.exists():
            local = self._resolve(name)
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
        from pyannote.audio import Pipeline

        try:
            pipeline = Pipeline.from_pretrained(local, token=self.sources.token,
                                                cache_dir=self.sources.cache_dir)
        except (LocalEntryNotFoundError, HfHubHTTPError) as exc:
            # A config that names models in other repositories (pyannote 3.x did) needs them too.
            raise MissingWeightsError(f"diarization pipeline {name} needs weights that cannot be "
                                      f"fetched ({_reason(exc)}). {_gated_hint(name)}") from exc
        except Exception as exc:
            raise ValueError(f"cannot load the diarization pipeline {name}: {_reason(exc)}") from exc
        if pipeline is None:
            raise ValueError(f"cannot load the diarization pipeline {name}: pyannote returned none")
        self._pipeline = pipeline.to(self.device)
        return self._pipeline

    def _resolve(self, repo_id: str) -> Path:
        (need,) = diarization_needs(self.options)
        self._resolved = resolve_needs((need,), self.sources)[need.ref]
        return self._resolved.path


def diarization_needs(options: DiarizationOptions) -> tuple[ModelNeed, ...]:
    """The hub repository of the pipeline; nothing when ``options.pipeline`` is a local folder."""
    name = options.pipeline
    if Path(name).expanduser().exists():
        return ()
    fetch = ("--diarization",) if name == DEFAULT_PIPELINE else ("--diarization", name)
    return (ModelNeed(RepoRef(name, PIPELINE_REVISION), PIPELINE_PATTERNS, ("config.yaml",), fetch,
                      hint=_gated_hint(name)),)


def _gated_hint(repo_id: str) -> str:
    return (f"pyannote's pipelines are gated: accept the conditions at https://hf.co/{repo_id} and set "
            f"HF_TOKEN to a token of that account before downloading")


def _reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _speaker_name(label) -> str:
    return f"SPEAKER_{int(label):02d}" if isinstance(label, (int, np.integer)) else str(label)


def _one_at_a_time(turns: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Overlapping turns made exclusive: where turns overlap, the one that started last speaks.

    pyannote 4's exclusive diarization never overlaps, so this only changes a legacy output.
    """
    turns = sorted(turns)
    edges = sorted({t for start, end, _ in turns for t in (start, end)})
    pieces: list[tuple[float, float, str]] = []
    active: list[tuple[float, float, str]] = []
    upcoming = 0
    for a, b in zip(edges, edges[1:]):
        while upcoming < len(turns) and turns[upcoming][0] <= a:
            active.append(turns[upcoming])
            upcoming += 1
        active = [turn for turn in active if turn[1] > a]
        if active:
            speaker = max(active)[2]
            if pieces and pieces[-1][2] == speaker and pieces[-1][1] == a:
                pieces[-1] = (pieces[-1][0], b, speaker)
            else:
                pieces.append((a, b, speaker))
    return pieces


def _merge_close(turns: list[tuple[float, float, str]], gap_s: float) -> list[tuple[float, float, str]]:
    """Non-overlapping, sorted turns with a speaker's turns less than ``gap_s`` apart joined."""
    merged: list[tuple[float, float, str]] = []
    for start, end, speaker in turns:
        # Only turns ending within the gap can be joined; whatever follows such a turn lies in it.
        k = len(merged) - 1
        while k >= 0 and merged[k][1] > start - gap_s and merged[k][2] != speaker:
            k -= 1
        if k >= 0 and merged[k][2] == speaker and start - merged[k][1] < gap_s:
            merged[k:] = [(merged[k][0], end, speaker)]
        else:
            merged.append((start, end, speaker))
    return merged
