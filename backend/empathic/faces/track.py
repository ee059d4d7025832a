"""Giving each person's face one ``track_id`` across the sampled frames.

Two cues, both already at hand: box overlap with the track's last box (people move little between
samples), and cosine similarity of the SigLIP embeddings (the same face looks alike, also after it
left the picture for a while). A detection joins the best-scoring compatible track; each track takes
at most one detection per frame; the rest start new tracks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..results import Box


@dataclass(frozen=True)
class TrackerOptions:
    min_iou: float = 0.2  # boxes overlapping this much continue a track...
    min_similarity_with_overlap: float = 0.5  # ...if the faces also look at least this alike
    reid_similarity: float = 0.85  # faces this alike continue a track without any overlap
    max_overlap_gap_s: float = 5.0  # box overlap counts only this soon after the track was seen
    embedding_momentum: float = 0.8  # weight of the track's past appearance in its running mean


@dataclass
class _Track:
    track_id: int
    box: Box
    last_time_s: float
    embedding: np.ndarray


@dataclass
class FaceTracker:
    options: TrackerOptions = field(default_factory=TrackerOptions)
    _tracks: list[_Track] = field(default_factory=list)
    _next_id: int = 1

    def assign(self, time_s: float, boxes: list[Box], embeddings: np.ndarray) -> list[int]:
        """Track ids for the faces of one frame (frames must come in time order)."""
        o = self.options
        candidates = []
        for t_index, track in enumerate(self._tracks):
            recent = time_s - track.last_time_s <= o.max_overlap_gap_s
            for d_index, box in enumerate(boxes):
                similarity = float(np.dot(track.embedding, embeddings[d_index]))
                overlap = track.box.iou(box) if recent else 0.0
                if (overlap >= o.min_iou and similarity >= o.min_similarity_with_overlap) or (
                        similarity >= o.reid_similarity):
                    candidates.append((overlap + similarity, t_index, d_index))
        # Best pairs first; ties broken by position so results never depend on set ordering.
        candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
        assigned: dict[int, int] = {}
        used_tracks: set[int] = set()
        for _, t_index, d_index in candidates:
            if t_index in used_tracks or d_index in assigned:
                continue
            assigned[d_index] = t_index
            used_tracks.add(t_index)
        ids = []
        for d_index, box in enumerate(boxes):
            embedding = embeddings[d_index]
            if d_index in assigned:
                track = self._tracks[assigned[d_index]]
                mixed = o.embedding_momentum * track.embedding + (1 - o.embedding_momentum) * embedding
                track.embedding = mixed / max(float(np.linalg.norm(mixed)), 1e-12)
                track.box, track.last_time_s = box, time_s
            else:
                track = _Track(self._next_id, box, time_s, np.asarray(embedding, dtype=np.float32))
                self._next_id += 1
                self._tracks.append(track)
            ids.append(track.track_id)
        return ids
