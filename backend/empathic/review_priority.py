"""How much a task's suggestions need a human, as one number in 0..1: the prediction ``score``
that Label Studio's Data Manager sorts by. Sorted ascending, the tasks most in need of review come
first (pure computation over the analyses).

For each face sample and voice segment, with p the shares over the 40 emotions (best first):

    certainty = ((p1 - p2) / p1 + 1 - H(p) / ln 40) / 2

the top emotion's lead over the runner-up (relative), averaged with one minus the shares'
normalised entropy: 0 when every emotion is as likely, near 1 when one stands out.

    face part  = mean over samples of (certainty x face quality) x share of samples with a face
    voice part = mean over segments of (certainty x voice quality)
    priority   = mean of the parts present x (1 - share of fused cells in conflict)

Face quality is size x sharpness x detection confidence (``persons.quality``); voice quality is
the SNR and speech probability where the persons' evidence was gathered, else 1, and 0 for
overlapped speech either way. A video in which no face is found scores 0 (everything is left to
the annotator); a recording with no segment scores 0 for its voice part.
"""

from __future__ import annotations

import math

import numpy as np

from .persons.fusion import share_vector
from .persons.quality import QualityOptions, face_quality, overlapped_segments, voice_quality
from .results import FaceAnalysis, VoiceAnalysis

LOG_EMOTIONS = math.log(40)


def certainty(shares: np.ndarray) -> float:
    p = np.sort(np.asarray(shares, dtype=np.float64))[::-1]
    total = p.sum()
    if total <= 0 or p[0] <= 0:
        return 0.0
    p = p / total
    lead = (p[0] - p[1]) / p[0] if len(p) > 1 else 1.0
    nonzero = p[p > 0]
    entropy = float(-(nonzero * np.log(nonzero)).sum()) / LOG_EMOTIONS
    return float(np.clip((lead + 1.0 - entropy) / 2.0, 0.0, 1.0))


def face_part(face: FaceAnalysis, options: QualityOptions = QualityOptions()) -> float:
    if not face.frames or not face.faces:
        return 0.0
    values = [certainty(share_vector(o.emotions)) * face_quality(o, options)[0] for o in face.faces]
    seen = len({o.sample_index for o in face.faces}) / len(face.frames)
    return float(np.mean(values)) * seen


def voice_part(voice: VoiceAnalysis, evidence=None, options: QualityOptions = QualityOptions()) -> float:
    if not voice.segments:
        return 0.0
    overlapped = overlapped_segments(voice)
    values = []
    for segment in voice.segments:
        measured = evidence.quality_of(segment.segment_index) if evidence is not None else None
        quality, _ = voice_quality(segment, measured, segment.segment_index in overlapped, options)
        values.append(certainty(share_vector(segment.emotions)) * quality)
    return float(np.mean(values))


def review_priority(face: FaceAnalysis | None = None, voice: VoiceAnalysis | None = None, persons=None,
                    evidence=None) -> float:
    """0 (look at this first) .. 1 (clear); see the module docstring."""
    parts = []
    if face is not None:
        parts.append(face_part(face))
    if voice is not None:
        parts.append(voice_part(voice, evidence))
    if not parts:
        return 0.0
    conflicts = 0.0
    if persons is not None and persons.timeline:
        both = [c for c in persons.timeline if c.face is not None and c.voice is not None]
        conflicts = sum(c.conflict for c in both) / len(both) if both else 0.0
    return round(float(np.mean(parts)) * (1.0 - conflicts), 6)
