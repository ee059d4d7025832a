"""ELAN (.eaf) of a persons analysis, written with pympi-ling: the tool behavioural researchers code
filmed interactions in.

Tiers: per person ``PERSON_n face`` and ``PERSON_n fused`` (the fusion grid; neighbouring cells
with the same text are joined), ``PERSON_n voice`` and ``PERSON_n speech`` (one annotation per voice
segment: its top emotions, and its transcript or "(speech)"), and ``shots``. An emotion annotation
reads "Sadness 0.181, Distress 0.094, ..." (the top emotions with their shares); a fused cell where
face and voice disagree ends with "[conflict]". The video is linked as the media file.
"""

from __future__ import annotations

import mimetypes
import os
import tempfile
from pathlib import Path

import numpy as np

from ..persons.analysis import PersonsAnalysis
from ..taxonomy import EMOTION_IDS, EMOTIONS_BY_ID

TOP_EMOTIONS = 3


def milliseconds(seconds: float) -> int:
    """ELAN's time unit."""
    return int(round(seconds * 1000))


def emotion_text(shares: np.ndarray, top: int = TOP_EMOTIONS) -> str:
    order = sorted(range(len(EMOTION_IDS)), key=lambda i: (-shares[i], i))[:top]
    return ", ".join(f"{EMOTIONS_BY_ID[EMOTION_IDS[i]].name} {shares[i]:.3f}" for i in order)


def _joined(cells: list[tuple[float, float, str]]) -> list[tuple[int, int, str]]:
    """Neighbouring cells with the same text as one annotation, in milliseconds; never overlapping."""
    joined: list[list] = []
    for start, end, text in cells:
        start_ms, end_ms = milliseconds(start), milliseconds(end)
        if joined and joined[-1][2] == text and joined[-1][1] >= start_ms:
            joined[-1][1] = max(joined[-1][1], end_ms)
            continue
        if joined and start_ms < joined[-1][1]:
            start_ms = joined[-1][1]  # overlapping windows: an ELAN tier holds no overlaps
        if end_ms > start_ms:
            joined.append([start_ms, end_ms, text])
    return [tuple(item) for item in joined]


def to_eaf(analysis: PersonsAnalysis):
    from pympi.Elan import Eaf

    eaf = Eaf(author="empathic")
    link_media(eaf, analysis.media.get("path"))
    tiers: dict[str, list[tuple[float, float, str]]] = {}
    for person in analysis.persons:
        pid = person.person_id
        cells = [c for c in analysis.timeline if c.person_id == pid]
        if person.track_id is not None:
            tiers[f"{pid} face"] = [(c.start_s, c.end_s, emotion_text(c.face.shares)) for c in cells if c.face]
        segments = [s for s in analysis.segments if s.person_id == pid]
        if segments:
            tiers[f"{pid} voice"] = [(s.start_s, s.end_s, emotion_text(s.voice.shares)) for s in segments if s.voice]
            tiers[f"{pid} speech"] = [(s.start_s, s.end_s, analysis.transcripts.get(s.segment_index) or "(speech)")
                                      for s in segments]
        tiers[f"{pid} fused"] = [(c.start_s, c.end_s, emotion_text(c.fused) + (" [conflict]" if c.conflict else ""))
                                 for c in cells]
    tiers["shots"] = [(shot.start_s, shot.end_s, f"shot {shot.shot_index + 1}") for shot in analysis.shots]
    for name, cells in tiers.items():
        eaf.add_tier(name)
        for start_ms, end_ms, text in _joined(sorted(cells)):
            eaf.add_annotation(name, start_ms, end_ms, text)
    eaf.remove_tier("default")
    return eaf


def link_media(eaf, media: str | None) -> None:
    if media:
        eaf.add_linked_file(str(Path(media).resolve()), relpath=Path(media).name,
                            mimetype=mimetypes.guess_type(str(media))[0] or "video/mp4")


def eaf_text(eaf) -> str:
    """The .eaf document as text (pympi writes files only)."""
    handle, name = tempfile.mkstemp(suffix=".eaf")
    os.close(handle)
    try:
        eaf.to_file(name)
        return Path(name).read_text(encoding="utf-8")
    finally:
        os.unlink(name)


class WriteEAF:
    extension = "eaf"

    def render(self, analysis: PersonsAnalysis) -> str:
        return eaf_text(to_eaf(analysis))
