"""``NAME.persons.json``: persons, who speaks each voice segment, the fused per-person timeline,
quality flags and per-shot summaries (the shape is documented in the README).

Emotions are given as ``{emotion_id: share}``, best first, ``top_k`` of them (all 40 with
``top_k=None``); shares are the softmax over LAION's 40 emotions, as everywhere else.
"""

from __future__ import annotations

import json

import numpy as np

from ..persons.analysis import PersonsAnalysis
from ..persons.fusion import FusedStretch, ModalityView
from ..taxonomy import EMOTION_IDS

DOCUMENT_VERSION = 1


def _r(value: float, digits: int = 6) -> float:
    return round(float(value), digits)


def emotions(shares: np.ndarray | None, top_k: int | None) -> dict[str, float] | None:
    if shares is None:
        return None
    order = sorted(range(len(EMOTION_IDS)), key=lambda i: (-shares[i], i))
    return {EMOTION_IDS[i]: _r(shares[i]) for i in order[:top_k]}


def _view(view: ModalityView | None, top_k: int | None) -> dict | None:
    if view is None:
        return None
    return {"weight": _r(view.weight, 4), "quality": _r(view.quality, 4), "covered_s": _r(view.covered_s),
            "flags": list(view.flags), "emotions": emotions(view.shares, top_k)}


def stretch_dict(stretch: FusedStretch, top_k: int | None) -> dict:
    flags = list(dict.fromkeys((stretch.face.flags if stretch.face else ()) +
                               (stretch.voice.flags if stretch.voice else ())))
    document = {"person_id": stretch.person_id, "start_time": _r(stretch.start_s), "end_time": _r(stretch.end_s),
                "face": _view(stretch.face, top_k), "voice": _view(stretch.voice, top_k),
                "fused": {"emotions": emotions(stretch.fused, top_k)}, "conflict": stretch.conflict,
                "flags": flags}
    if stretch.segment_index is not None:
        document = {"segment_index": stretch.segment_index, **document}
    return document


def persons_document(analysis: PersonsAnalysis, top_k: int | None = 5) -> dict:
    totals = {p.person_id: {"on_screen_s": 0.0, "speaking_s": 0.0} for p in analysis.persons}
    for shot in analysis.shots:
        for row in shot.persons:
            totals[row.person_id]["on_screen_s"] += row.on_screen_s
            totals[row.person_id]["speaking_s"] += row.speaking_s
    persons = []
    for person in analysis.persons:
        cells = [c for c in analysis.timeline if c.person_id == person.person_id]
        mean = {kind: _mean([getattr(c, kind).shares for c in cells if getattr(c, kind) is not None])
                for kind in ("face", "voice")}
        persons.append({
            "person_id": person.person_id, "track_id": person.track_id, "speaker_id": person.speaker_id,
            "off_screen": person.track_id is None,
            "on_screen_s": _r(totals[person.person_id]["on_screen_s"]),
            "speaking_s": _r(totals[person.person_id]["speaking_s"]),
            "conflicts": sum(1 for c in cells if c.conflict),
            "dominant_emotions": {"face": emotions(mean["face"], top_k), "voice": emotions(mean["voice"], top_k),
                                  "fused": emotions(_mean([c.fused for c in cells]), top_k)}})
    links = [{"segment_index": link.segment_index, "start_time": _r(link.start_s), "end_time": _r(link.end_s),
              "speaker_id": link.speaker_id, "track_id": link.track_id,
              "person_id": analysis.segment_person.get(link.segment_index),
              "off_screen": link.off_screen, "confidence": _r(link.confidence, 4),
              "evidence": link.evidence.to_dict()} for link in analysis.links]
    shots = [{"shot_index": shot.shot_index, "start_time": _r(shot.start_s), "end_time": _r(shot.end_s),
              "persons": [{"person_id": row.person_id, "on_screen_s": _r(row.on_screen_s),
                           "speaking_s": _r(row.speaking_s), "face": emotions(row.face_shares, top_k),
                           "voice": emotions(row.voice_shares, top_k), "fused": emotions(row.fused_shares, top_k),
                           "conflicts": [[_r(a), _r(b)] for a, b in row.conflicts]} for row in shot.persons]}
             for shot in analysis.shots]
    return {"version": DOCUMENT_VERSION, "media": analysis.media,
            "model_info": {"face": analysis.face_model, "voice": analysis.voice_model},
            "parameters": {k: v for k, v in analysis.parameters},
            "persons": persons, "links": links,
            "segments": [stretch_dict(s, top_k) for s in analysis.segments],
            "timeline": [stretch_dict(s, top_k) for s in analysis.timeline],
            "shots": shots}


def _mean(vectors: list[np.ndarray]) -> np.ndarray | None:
    return np.mean(vectors, axis=0) if vectors else None


class WritePersonsJSON:
    extension = "persons.json"

    def __init__(self, top_k: int | None = 5):
        self.top_k = top_k

    def render(self, analysis: PersonsAnalysis) -> str:
        return json.dumps(persons_document(analysis, self.top_k), indent=2, ensure_ascii=False) + "\n"
