"""The synchrony baseline: a speaker's mouth moves with the loudness of its voice.

Per voice segment and face track, the mouth motion energy (``evidence.mouth_motion``) is
correlated (Pearson) with the speech envelope averaged over the same instants, at each lag in
``lags_s`` (the sound follows the mouth by a few tens of milliseconds); the best lag counts.
Diarized speakers are linked as a whole: each speaker's evidence for each track is summed over its
segments (correlation x seconds judged), and speakers are assigned to tracks one-to-one by the
Hungarian method on that sum. Segments without a speaker are linked one by one. A link is kept only
where the mean correlation r reaches ``min_correlation`` over at least ``min_overlap_s`` seconds
and is unlikely by chance: its Fisher score z = atanh(r) * sqrt(n - 3), n the motion instants
behind it, reaches ``min_z`` (3.5: about one chance in four thousand at one lag, which leaves room
for the best of the lags searched; a few seconds of clear synchrony pass, a still face's jitter
does not: over 2 s, the best lag of pure noise against a speech envelope reaches r = 0.4-0.6).
Otherwise the voice is off screen.

Confidence of a link: the mean correlation (clipped to 0..1) times the share of ``full_evidence_s``
seconds of evidence behind it. Confidence of an off-screen verdict: 1 minus the best candidate's
Fisher score as a share of ``min_z`` (1 when no face could be judged).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ...results import FaceAnalysis, VoiceAnalysis, VoiceSegment
from ..evidence import AudioVisualEvidence, TrackMotion
from . import LinkEvidence, SpeakerLink, SpeakerLinker

ENVELOPE_POINTS = 5  # envelope samples averaged over each motion instant's interval


@dataclass(frozen=True)
class SynchronyOptions:
    min_correlation: float = 0.3
    min_z: float = 3.5  # Fisher score a link needs (see the module docstring)
    min_overlap_s: float = 1.0  # seconds of judged mouth motion a link needs
    lag_min_s: float = -0.08
    lag_max_s: float = 0.24
    lag_step_s: float = 0.04
    min_points: int = 6  # motion instants a segment needs for a track to be judged at all
    full_evidence_s: float = 4.0  # seconds of evidence for full confidence

    def __post_init__(self):
        if not -1 <= self.min_correlation <= 1:
            raise ValueError(f"minimum correlation must be in [-1, 1], got {self.min_correlation}")
        if self.lag_step_s <= 0 or self.lag_max_s < self.lag_min_s:
            raise ValueError("the lag range must have lag_min_s <= lag_max_s and a step > 0")
        if self.min_points < 4 or self.min_overlap_s < 0 or self.full_evidence_s <= 0 or self.min_z < 0:
            raise ValueError("min_points must be >= 4, and min_overlap_s, min_z >= 0, full_evidence_s > 0")

    @property
    def lags_s(self) -> np.ndarray:
        count = int(np.floor((self.lag_max_s - self.lag_min_s) / self.lag_step_s + 1e-9)) + 1
        return self.lag_min_s + self.lag_step_s * np.arange(count)


@dataclass(frozen=True)
class _Judgement:
    track_id: int
    correlation: float
    lag_s: float
    overlap_s: float
    points: int


def fisher_z(correlation: float, points: int) -> float:
    """How unlikely a correlation is by chance over ``points`` instants (about a normal score)."""
    if points <= 3:
        return 0.0
    return float(np.arctanh(np.clip(correlation, -0.999999, 0.999999)) * np.sqrt(points - 3))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / norm) if norm > 1e-12 else 0.0


def _local_envelope(evidence: AudioVisualEvidence, times_s: np.ndarray, span_s: float) -> np.ndarray:
    """The envelope averaged over each instant's interval (the two frames the motion compares)."""
    offsets = np.linspace(-span_s / 2, span_s / 2, ENVELOPE_POINTS)
    return evidence.envelope_at(times_s[:, None] + offsets[None, :]).mean(axis=1)


def judge(segment: VoiceSegment, motion: TrackMotion, evidence: AudioVisualEvidence,
          options: SynchronyOptions) -> _Judgement | None:
    inside = (motion.times_s >= segment.start_s) & (motion.times_s <= segment.end_s)
    if int(inside.sum()) < options.min_points:
        return None
    times, energy = motion.times_s[inside], motion.energy[inside].astype(np.float64)
    step = float(np.median(np.diff(motion.times_s))) if len(motion.times_s) > 1 else 0.0
    best = (-2.0, 0.0)
    for lag in options.lags_s:
        correlation = _pearson(energy, _local_envelope(evidence, times + lag, step))
        if correlation > best[0] + 1e-12:
            best = (correlation, float(lag))
    return _Judgement(motion.track_id, best[0], best[1], len(times) * step, len(times))


class SynchronyLinker(SpeakerLinker):
    name = "synchrony"

    def __init__(self, options: SynchronyOptions = SynchronyOptions()):
        self.options = options

    def parameters(self) -> tuple[tuple[str, object], ...]:
        return (("linker", self.name),) + tuple(asdict(self.options).items())

    def link(self, face: FaceAnalysis, voice: VoiceAnalysis,
             evidence: AudioVisualEvidence) -> tuple[SpeakerLink, ...]:
        judged = {s.segment_index: self._judge_all(s, evidence) for s in voice.segments}
        by_speaker = self._assign_speakers(voice, judged)
        links = []
        for segment in voice.segments:
            candidates = judged[segment.segment_index]
            if segment.speaker is not None:
                track, confidence = by_speaker.get(segment.speaker, (None, None))
            else:
                track, confidence = self._link_alone(candidates)
            links.append(self._make_link(segment, candidates, track, confidence))
        return tuple(links)

    def _judge_all(self, segment: VoiceSegment, evidence: AudioVisualEvidence) -> list[_Judgement]:
        found = [judge(segment, m, evidence, self.options) for m in evidence.motions]
        return sorted((j for j in found if j is not None), key=lambda j: (-j.correlation, j.track_id))

    def _confidence(self, correlation: float, overlap_s: float) -> float:
        return round(float(np.clip(correlation, 0, 1) * min(1.0, overlap_s / self.options.full_evidence_s)), 4)

    def _kept(self, correlation: float, overlap_s: float, points: int) -> bool:
        return (correlation >= self.options.min_correlation and overlap_s >= self.options.min_overlap_s
                and fisher_z(correlation, points) >= self.options.min_z)

    def _link_alone(self, candidates: list[_Judgement]) -> tuple[int | None, float | None]:
        if candidates and self._kept(candidates[0].correlation, candidates[0].overlap_s, candidates[0].points):
            best = candidates[0]
            return best.track_id, self._confidence(best.correlation, best.overlap_s)
        return None, None

    def _assign_speakers(self, voice: VoiceAnalysis, judged: dict) -> dict[str, tuple[int, float]]:
        """speaker -> (track, confidence), one-to-one, from evidence summed over the whole video."""
        weighted: dict[tuple[str, int], float] = defaultdict(float)
        seconds: dict[tuple[str, int], float] = defaultdict(float)
        points: dict[tuple[str, int], int] = defaultdict(int)
        for segment in voice.segments:
            if segment.speaker is None:
                continue
            for j in judged[segment.segment_index]:
                weighted[segment.speaker, j.track_id] += j.correlation * j.overlap_s
                seconds[segment.speaker, j.track_id] += j.overlap_s
                points[segment.speaker, j.track_id] += j.points
        speakers = sorted({s for s, _ in weighted})
        tracks = sorted({t for _, t in weighted})
        if not speakers or not tracks:
            return {}
        gain = np.array([[max(0.0, weighted.get((s, t), 0.0)) for t in tracks] for s in speakers])
        rows, cols = linear_sum_assignment(-gain)
        assigned = {}
        for row, col in zip(rows, cols):
            key = (speakers[row], tracks[col])
            total = seconds.get(key, 0.0)
            mean = weighted.get(key, 0.0) / total if total > 0 else 0.0
            if self._kept(mean, total, points.get(key, 0)):
                assigned[speakers[row]] = (tracks[col], self._confidence(mean, total))
        return assigned

    def _make_link(self, segment: VoiceSegment, candidates: list[_Judgement], track: int | None,
                   confidence: float | None) -> SpeakerLink:
        shown = next((j for j in candidates if j.track_id == track), None) if track is not None else None
        if track is None:
            shown = candidates[0] if candidates else None
            score = fisher_z(shown.correlation, shown.points) if shown else 0.0
            confidence = round(1.0 - float(np.clip(score / self.options.min_z, 0, 1)), 4) \
                if self.options.min_z > 0 else 0.0
        evidence = LinkEvidence(
            correlation=shown.correlation if shown else 0.0, lag_s=shown.lag_s if shown else 0.0,
            overlap_s=shown.overlap_s if shown else 0.0,
            candidates=tuple((j.track_id, j.correlation) for j in candidates))
        return SpeakerLink(segment.segment_index, segment.start_s, segment.end_s, segment.speaker, track,
                           float(confidence or 0.0), evidence)
