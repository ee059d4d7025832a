"""Who is speaking: each voice segment linked to the face track that speaks it, or to none.

One interface, one file per method: ``synchrony`` (mouth motion against the speech envelope) is
the baseline; a learned active-speaker model can take its place by implementing ``SpeakerLinker``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from ...results import FaceAnalysis, VoiceAnalysis
from ..evidence import AudioVisualEvidence


@dataclass(frozen=True)
class LinkEvidence:
    correlation: float  # of the linked track (or of the best candidate when none is linked)
    lag_s: float  # how far the sound follows the mouth at that correlation
    overlap_s: float  # seconds of the segment in which that track's mouth could be judged
    candidates: tuple[tuple[int, float], ...]  # (track_id, correlation) of every face judged, best first

    def to_dict(self) -> dict:
        return {"correlation": round(self.correlation, 4), "lag_s": round(self.lag_s, 3),
                "overlap_s": round(self.overlap_s, 3),
                "candidates": [{"track_id": t, "correlation": round(c, 4)} for t, c in self.candidates]}


@dataclass(frozen=True)
class SpeakerLink:
    """One voice segment and the face track speaking it (None: off screen, or nobody to judge)."""

    segment_index: int
    start_s: float
    end_s: float
    speaker_id: str | None
    track_id: int | None
    confidence: float  # 0..1
    evidence: LinkEvidence

    @property
    def off_screen(self) -> bool:
        return self.track_id is None


class SpeakerLinker(ABC):
    name: str

    @abstractmethod
    def link(self, face: FaceAnalysis, voice: VoiceAnalysis,
             evidence: AudioVisualEvidence) -> tuple[SpeakerLink, ...]:
        """One link per voice segment, in segment order."""

    @abstractmethod
    def parameters(self) -> tuple[tuple[str, object], ...]:
        """Everything that changes the links, for outputs and cache keys."""


def make_linker(name: str = "synchrony", **settings) -> SpeakerLinker:
    if name == "synchrony":
        from .synchrony import SynchronyLinker, SynchronyOptions

        return SynchronyLinker(SynchronyOptions(**settings))
    raise ValueError(f"unknown speaker linker {name!r}; choose synchrony")
