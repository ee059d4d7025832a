"""How a live session went: samples taken and skipped, rate achieved, and latency percentiles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


@dataclass(frozen=True)
class StreamStats:
    """One modality of a session. ``offered``: samples (or windows) the stream brought;
    ``processed``: those the models took; ``skipped``: those dropped because the models were busy."""

    offered: int
    processed: int
    skipped: int
    latencies_s: tuple[float, ...]  # per processed item: result out minus its media in

    def percentile(self, q: float) -> float | None:
        return float(np.percentile(self.latencies_s, q)) if self.latencies_s else None

    def to_dict(self, seconds: float) -> dict:
        return {"offered": self.offered, "processed": self.processed, "skipped": self.skipped,
                "per_second": _round(self.processed / seconds if seconds > 0 else None, 3),
                "latency_p50_s": _round(self.percentile(50)), "latency_p95_s": _round(self.percentile(95)),
                "latency_max_s": _round(max(self.latencies_s) if self.latencies_s else None)}


@dataclass(frozen=True)
class LiveSummary:
    source: str
    ended: str  # "end of stream", "stopped", or "stream dropped: <why>"
    wall_s: float  # from the first media received to the end
    media_s: float  # how much of the stream was received, in its own time
    face: StreamStats | None
    voice: StreamStats | None

    @property
    def dropped(self) -> bool:
        return self.ended.startswith("stream dropped")

    def to_dict(self) -> dict:
        document: dict = {"source": self.source, "ended": self.ended, "wall_s": _round(self.wall_s, 3),
                          "media_s": _round(self.media_s, 3)}
        if self.face is not None:
            document["face"] = self.face.to_dict(self.wall_s)
        if self.voice is not None:
            document["voice"] = self.voice.to_dict(self.wall_s)
        return document

    def line(self) -> str:
        """One line for people."""
        parts = [f"{self.source}: {self.ended} after {self.media_s:.1f} s of media in {self.wall_s:.1f} s"]
        for name, stats, unit in (("faces", self.face, "samples"), ("voice", self.voice, "windows")):
            if stats is None:
                continue
            p50, p95 = stats.percentile(50), stats.percentile(95)
            rate = stats.processed / self.wall_s if self.wall_s > 0 else 0.0
            latency = f", latency p50 {p50:.3f} s p95 {p95:.3f} s" if p50 is not None else ""
            parts.append(f"{name}: {stats.processed} of {stats.offered} {unit} ({rate:.2f}/s), "
                         f"{stats.skipped} skipped{latency}")
        return "; ".join(parts)
