"""Persons from a face analysis, a voice analysis and their audio-visual evidence (pure).

A person is a face track with the voice linked to it, a face alone, or a voice alone (a diarized
speaker linked to no face; segments without a speaker that no face speaks form one off-screen
voice). Persons are numbered PERSON_1, PERSON_2, ... : face tracks first (by track id), then
off-screen speakers (by name), then the anonymous off-screen voice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..progress import ProgressHook
from ..results import FaceAnalysis, FaceObservation, VoiceAnalysis, VoiceSegment
from ..timeline import track_extents
from .evidence import AudioVisualEvidence
from .fusion import FusedStretch, FusionOptions, face_view, fuse, voice_view
from .linking import SpeakerLink, SpeakerLinker
from .quality import overlapped_segments

OFF_SCREEN_VOICE = "off-screen voice"


@dataclass(frozen=True)
class Person:
    person_id: str
    track_id: int | None
    speaker_id: str | None
    off_screen_voice: bool = False  # the segments without a speaker that no face speaks


@dataclass(frozen=True, eq=False)
class PersonShot:
    person_id: str
    on_screen_s: float  # seconds the face is seen in the shot
    speaking_s: float  # seconds of the person's voice segments in the shot
    face_shares: np.ndarray | None  # mean over the shot, [40]
    voice_shares: np.ndarray | None
    fused_shares: np.ndarray | None
    conflicts: tuple[tuple[float, float], ...]  # the fused timeline's conflict cells in the shot


@dataclass(frozen=True, eq=False)
class ShotSummary:
    shot_index: int
    start_s: float
    end_s: float
    persons: tuple[PersonShot, ...]


@dataclass(frozen=True, eq=False)
class PersonsAnalysis:
    media: dict
    persons: tuple[Person, ...]
    links: tuple[SpeakerLink, ...]
    segment_person: dict[int, str]  # voice segment index -> person id
    timeline: tuple[FusedStretch, ...]  # per person and grid cell, in time then person order
    segments: tuple[FusedStretch, ...]  # per voice segment
    shots: tuple[ShotSummary, ...]
    face_model: dict
    voice_model: dict
    parameters: tuple[tuple[str, object], ...]
    transcripts: dict[int, str]  # voice segment index -> its transcript, where one was made

    def person_of_track(self, track_id: int) -> Person | None:
        return next((p for p in self.persons if p.track_id == track_id), None)

    def person(self, person_id: str) -> Person:
        return next(p for p in self.persons if p.person_id == person_id)


def make_persons(face: FaceAnalysis, voice: VoiceAnalysis,
                 links: tuple[SpeakerLink, ...]) -> tuple[tuple[Person, ...], dict[int, str]]:
    """The persons and, for every voice segment, the person whose voice it is."""
    speaker_of_track: dict[int, str] = {}
    for link in links:
        if link.track_id is not None and link.speaker_id is not None:
            speaker_of_track.setdefault(link.track_id, link.speaker_id)
    persons: list[Person] = []
    for track_id in face.track_ids:
        persons.append(Person(f"PERSON_{len(persons) + 1}", track_id, speaker_of_track.get(track_id)))
    linked_speakers = set(speaker_of_track.values())
    off_speakers = sorted({l.speaker_id for l in links if l.speaker_id is not None and l.track_id is None}
                          - linked_speakers)
    for speaker in off_speakers:
        persons.append(Person(f"PERSON_{len(persons) + 1}", None, speaker))
    if any(l.track_id is None and l.speaker_id is None for l in links):
        persons.append(Person(f"PERSON_{len(persons) + 1}", None, None, off_screen_voice=True))
    by_track = {p.track_id: p.person_id for p in persons if p.track_id is not None}
    by_speaker = {p.speaker_id: p.person_id for p in persons if p.speaker_id is not None}
    anonymous = next((p.person_id for p in persons if p.off_screen_voice), None)
    segment_person = {}
    for link in links:
        if link.track_id is not None:
            segment_person[link.segment_index] = by_track[link.track_id]
        elif link.speaker_id is not None:
            # a speaker linked as a whole: a segment of it where no face could be judged still is its
            segment_person[link.segment_index] = by_speaker[link.speaker_id]
        else:
            segment_person[link.segment_index] = anonymous
    return tuple(persons), segment_person


def analyze_persons(face: FaceAnalysis, voice: VoiceAnalysis, evidence: AudioVisualEvidence,
                    linker: SpeakerLinker, options: FusionOptions = FusionOptions(),
                    shots_s: tuple[float, ...] = (), hook: ProgressHook | None = None) -> PersonsAnalysis:
    """Link, fuse and summarise; ``shots_s`` are the shot start times (empty: one shot)."""
    if hook:
        hook("linking", 0, len(voice.segments))
    links = linker.link(face, voice, evidence)
    if hook:
        hook("linking", len(voice.segments), len(voice.segments))
    persons, segment_person = make_persons(face, voice, links)
    tracks = _tracks(face)
    extents = {t: track_extents(face, obs) for t, obs in tracks.items()}
    voices: dict[str, list[VoiceSegment]] = {}
    for segment in voice.segments:
        voices.setdefault(segment_person[segment.segment_index], []).append(segment)
    overlapped = overlapped_segments(voice)
    duration = max(float(face.media.get("duration_s") or 0.0), float(voice.media.get("duration_s") or 0.0))
    cells = int(np.ceil(duration / options.grid_s - 1e-9))
    timeline: list[FusedStretch] = []
    for cell in range(cells):
        if hook and (cell % 60 == 0 or cell == cells - 1):
            hook("fusion", cell + 1, cells)
        start, end = cell * options.grid_s, min(duration, (cell + 1) * options.grid_s)
        for person in persons:
            stretch = _fuse_stretch(person, start, end, tracks, extents, voices, evidence, overlapped, options)
            if stretch is not None:
                timeline.append(stretch)
    per_segment = []
    for segment in voice.segments:
        person = next(p for p in persons if p.person_id == segment_person[segment.segment_index])
        stretch = _fuse_stretch(person, segment.start_s, segment.end_s, tracks, extents,
                                {person.person_id: [segment]}, evidence, overlapped, options,
                                segment_index=segment.segment_index)
        per_segment.append(stretch)
    shot_starts = tuple(s for s in shots_s if 0 < s < duration)
    return PersonsAnalysis(
        media=dict(face.media), persons=persons, links=links, segment_person=segment_person,
        timeline=tuple(timeline), segments=tuple(per_segment),
        shots=summarise_shots((0.0,) + shot_starts, duration, persons, tracks, extents, voices, timeline),
        face_model=face.model.to_dict(), voice_model=voice.model.to_dict(),
        parameters=(("face_analysis", dict(face.parameters)), ("voice_analysis", dict(voice.parameters)),
                    ("segmentation", voice.segmentation_mode), ("evidence", dict(evidence.parameters)),
                    ("linking", dict(linker.parameters())), ("fusion", _fusion_parameters(options))),
        transcripts={s.segment_index: s.transcription for s in voice.segments if s.transcription})


def _fusion_parameters(options: FusionOptions) -> dict:
    return {"grid_s": options.grid_s, "face_weight": options.face_weight, "voice_weight": options.voice_weight,
            "conflict_min_quality": options.conflict_min_quality,
            "conflict_divergence": options.conflict_divergence, "quality": vars(options.quality).copy()}


def _tracks(face: FaceAnalysis) -> dict[int, list[FaceObservation]]:
    tracks: dict[int, list[FaceObservation]] = {}
    for observation in face.faces:
        tracks.setdefault(observation.track_id, []).append(observation)
    return tracks


def _fuse_stretch(person: Person, start: float, end: float, tracks, extents, voices, evidence, overlapped,
                  options: FusionOptions, segment_index: int | None = None) -> FusedStretch | None:
    seen = None
    if person.track_id is not None:
        seen = face_view(tracks[person.track_id], extents[person.track_id], start, end, options.quality)
    heard = voice_view(voices.get(person.person_id, []), evidence, overlapped, start, end, options.quality)
    return fuse(person.person_id, start, end, seen, heard, options, segment_index)


def summarise_shots(starts: tuple[float, ...], duration: float, persons, tracks, extents, voices,
                    timeline: list[FusedStretch]) -> tuple[ShotSummary, ...]:
    summaries = []
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else duration
        rows = []
        for person in persons:
            on_screen = 0.0
            if person.track_id is not None:
                on_screen = sum(max(0.0, min(b, end) - max(a, start)) for a, b in extents[person.track_id])
            speaking = sum(max(0.0, min(s.end_s, end) - max(s.start_s, start))
                           for s in voices.get(person.person_id, []))
            cells = [c for c in timeline if c.person_id == person.person_id and c.start_s < end and c.end_s > start]
            if not cells and on_screen <= 0 and speaking <= 0:
                continue
            rows.append(PersonShot(
                person.person_id, round(on_screen, 6), round(speaking, 6),
                _mean([c.face.shares for c in cells if c.face is not None]),
                _mean([c.voice.shares for c in cells if c.voice is not None]),
                _mean([c.fused for c in cells]),
                tuple((c.start_s, c.end_s) for c in cells if c.conflict)))
        summaries.append(ShotSummary(index, start, end, tuple(rows)))
    return tuple(summaries)


def _mean(vectors: list[np.ndarray]) -> np.ndarray | None:
    return np.mean(vectors, axis=0) if vectors else None
