"""What a plot of an analysis shows, computed from the documents ``empathic annotate`` writes.

The input is the JSON documents themselves (``NAME.faces.json``, ``NAME.voice.json``,
``NAME.persons.json``) as dicts, so ``empathic plot`` on the files and ``annotate --plot`` on the
analyses in memory read the same thing and draw the same figure. A document written with
``--top-k`` below 40 lists only the best emotions of each face or segment: those are drawn (a line
breaks where its emotion is not listed) and the figure says so.

Shares are LAION's: the softmax over the 40 emotions, for ranking and display, not probabilities.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePath

from ..taxonomy import EMOTION_IDS, EMOTIONS_BY_ID, FACE_DIMENSIONS, VOICE_ATTRIBUTES

DEFAULT_TOP = 5
EMOTION_COUNT = len(EMOTION_IDS)
PERSONS_DOCUMENT_VERSION = 1  # the NAME.persons.json version this module reads
VOICE_ATTRIBUTES_DRAWN = ("valence", "arousal")
KINDS = ("faces", "voice", "persons")
_KIND_NAMES = {"faces": "face analysis", "voice": "voice analysis", "persons": "persons document"}
_UNITS = {"faces": "face", "voice": "segment", "persons": "cell"}
_EMOTION_ORDER = {emotion_id: index for index, emotion_id in enumerate(EMOTION_IDS)}
_DIMENSION_NAMES = {d.id: d.name for d in FACE_DIMENSIONS}
_ATTRIBUTES = {d.id: d for d in VOICE_ATTRIBUTES}

# One colour per emotion, the same in every panel and in both renderers: matplotlib's tab20 and
# tab20b, strong shades first, so that the emotions of one panel rarely share a hue.
_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#393b79", "#6b6ecf", "#637939", "#b5cf6b", "#8c6d31", "#e7ba52", "#843c39", "#d6616b", "#7b4173", "#ce6dbd",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
    "#5254a3", "#9c9ede", "#8ca252", "#cedb9c", "#bd9e39", "#e7cb94", "#ad494a", "#e7969c", "#a55194", "#de9ed6",
)
SERIES_COLOURS = _PALETTE[:10]  # speakers, dimensions: anything that is not an emotion


class DocumentError(ValueError):
    """A document that is not an analysis ``empathic annotate`` writes, or a damaged one."""


def emotion_colour(emotion_id: str) -> str:
    return _PALETTE[_EMOTION_ORDER[emotion_id]]


@dataclass(frozen=True)
class Moment:
    """The shares a document lists for one face track, segment or person at one time, best first."""

    time_s: float
    shares: tuple[tuple[str, float], ...]

    def share(self, emotion_id: str) -> float | None:
        return dict(self.shares).get(emotion_id)


@dataclass(frozen=True)
class EmotionLine:
    emotion_id: str
    name: str
    mean_share: float  # over the panel's moments; a moment that does not list the emotion counts 0
    times_s: tuple[float, ...]
    shares: tuple[float | None, ...]  # None breaks the line: not seen there, or not listed

    @property
    def colour(self) -> str:
        return emotion_colour(self.emotion_id)


@dataclass(frozen=True)
class EmotionPanel:
    """The top emotions of one face track or person over time; ``moments`` hold everything listed."""

    title: str
    lines: tuple[EmotionLine, ...]  # best mean share first
    moments: tuple[Moment, ...]
    listed: int  # the fewest emotions a moment lists: 40 when the document holds them all

    @property
    def complete(self) -> bool:
        return self.listed >= EMOTION_COUNT


@dataclass(frozen=True)
class VoiceBar:
    start_s: float
    end_s: float
    row: str  # speaker, or the person the segment is linked to
    moment: Moment

    @property
    def top_emotion(self) -> str | None:
        return EMOTIONS_BY_ID[self.moment.shares[0][0]].name if self.moment.shares else None


@dataclass(frozen=True)
class VoicePanel:
    title: str
    rows: tuple[str, ...]  # top to bottom
    bars: tuple[VoiceBar, ...]
    listed: int

    @property
    def complete(self) -> bool:
        return self.listed >= EMOTION_COUNT


@dataclass(frozen=True)
class ValueLine:
    """One dimension or attribute of one track or speaker; None breaks the line."""

    label: str  # e.g. Valence
    group: str  # e.g. track 1, SPEAKER_00
    times_s: tuple[float, ...]
    values: tuple[float | None, ...]


@dataclass(frozen=True)
class ValuePanel:
    title: str
    labels: tuple[str, ...]  # every label of the panel's lines, in drawing order (one colour each)
    groups: tuple[str, ...]  # every group (one dash pattern each)
    lines: tuple[ValueLine, ...]


@dataclass(frozen=True)
class PlotData:
    title: str
    duration_s: float
    emotion_panels: tuple[EmotionPanel, ...]
    voice: VoicePanel | None
    value_panels: tuple[ValuePanel, ...]
    cuts_s: tuple[float, ...]  # shot starts after the first: hard cuts
    notes: tuple[str, ...]  # what the reader should know: emotions missing from the files, nothing found

    @property
    def panels(self) -> tuple[EmotionPanel | VoicePanel | ValuePanel, ...]:
        return self.emotion_panels + ((self.voice,) if self.voice else ()) + self.value_panels


def panel_height_in(panel: EmotionPanel | VoicePanel | ValuePanel) -> float:
    """How tall a panel is drawn (inches of the PNG; the page scales the same proportions)."""
    if isinstance(panel, VoicePanel):
        return 0.7 + 0.35 * len(panel.rows)
    return 2.3 if isinstance(panel, EmotionPanel) else 2.0


def document_kind(document: object) -> str:
    """``faces``, ``voice`` or ``persons``; DocumentError says what else the document is."""
    if not isinstance(document, dict):
        raise DocumentError(f"a JSON {type(document).__name__}, not an analysis (an object)")
    keys = set(document)
    if "persons" in keys and "timeline" in keys:
        if document.get("version") != PERSONS_DOCUMENT_VERSION:
            raise DocumentError(f"persons document version {document.get('version')!r}; this version reads "
                                f"version {PERSONS_DOCUMENT_VERSION}")
        return "persons"
    if isinstance(document.get("faces"), list) and "frames" in keys:
        return "faces"
    if isinstance(document.get("segments"), list) and "attribute_scales" in keys:
        return "voice"
    if {"images", "annotations"} <= keys:
        raise DocumentError("a COCO file; plot reads the analyses `annotate -f json` and `-f persons` write "
                            "(NAME.faces.json, NAME.voice.json, NAME.persons.json)")
    shown = ", ".join(sorted(map(str, keys))[:8]) or "none"
    raise DocumentError(f"not an analysis of `empathic annotate` (NAME.faces.json, NAME.voice.json or "
                        f"NAME.persons.json); its keys: {shown}")


def plot_data(documents: Mapping[str, object], top: int = DEFAULT_TOP) -> PlotData:
    """One figure of up to one face analysis, one voice analysis and one persons document of the
    same media. ``documents`` maps a name (the file's, for error messages) to its JSON document."""
    if not 1 <= top <= EMOTION_COUNT:
        raise ValueError(f"top must be between 1 and {EMOTION_COUNT}, got {top}")
    named = _by_kind(documents)
    media = _same_media(named)
    persons = _PersonIndex.empty()
    if "persons" in named:
        with _reading(named["persons"][0], "persons"):
            persons = _PersonIndex.of(named["persons"][1])
    emotion_panels: list[EmotionPanel] = []
    value_panels: list[ValuePanel] = []
    voice = None
    cuts: set[float] = set()
    notes: list[str] = []
    if "faces" in named:
        with _reading(named["faces"][0], "face"):
            panels, dimensions = _face_panels(named["faces"][1], top, persons)
        emotion_panels += panels
        value_panels += [dimensions] if dimensions else []
        notes += _missing_note("faces", panels) if panels else ["faces: no face found"]
    if "persons" in named:
        with _reading(named["persons"][0], "persons"):
            panels = _person_panels(named["persons"][1], top)
            cuts.update(float(shot["start_time"]) for shot in named["persons"][1]["shots"])
            if "voice" not in named:  # the persons document's segments stand in for the voice analysis
                voice = _voice_panel_of_persons(named["persons"][1], persons)
        emotion_panels += panels
        notes += _missing_note("persons", panels + ([voice] if voice else []))
    if "voice" in named:
        with _reading(named["voice"][0], "voice"):
            voice, attributes = _voice_panels(named["voice"][1], persons)
            cuts.update(float(t) for t in named["voice"][1].get("shots") or ())
        value_panels += [attributes] if attributes else []
        notes += _missing_note("voice", [voice]) if voice.bars else ["voice: no voice segment"]
    ends = [_duration(document) for _, document in named.values()]
    ends += [m.time_s for panel in emotion_panels for m in panel.moments]
    ends += [bar.end_s for bar in voice.bars] if voice else []
    duration = max(ends)
    return PlotData(title=f"{media or 'analysis'}: {', '.join(k for k in KINDS if k in named)}",
                    duration_s=duration, emotion_panels=tuple(emotion_panels),
                    voice=voice if voice is not None and voice.bars else None, value_panels=tuple(value_panels),
                    cuts_s=tuple(sorted({round(t, 6) for t in cuts if 0 < t < duration})), notes=tuple(notes))


def _by_kind(documents: Mapping[str, object]) -> dict[str, tuple[str, dict]]:
    """kind -> (name, document); at most one document of each kind."""
    if not documents:
        raise ValueError("nothing to plot: no document given")
    named: dict[str, tuple[str, dict]] = {}
    for name, document in documents.items():
        with _reading(name, "document"):
            kind = document_kind(document)
        if kind in named:
            raise DocumentError(f"{name}: a second {_KIND_NAMES[kind]} (the first is {named[kind][0]}); "
                                f"give at most one of each kind")
        named[kind] = (name, document)
    return named


@contextmanager
def _reading(name: str, kind: str):
    """Any fault of a document becomes one DocumentError that names the document."""
    try:
        yield
    except DocumentError as error:
        raise DocumentError(f"{name}: {error}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        raise DocumentError(f"{name}: a damaged {kind} analysis ({type(error).__name__}: {error})") from None


def _media_name(document: dict) -> str:
    media = document.get("media") or {}
    return str(media.get("file_name") or PurePath(str(media.get("path") or "")).name)


def _same_media(named: dict[str, tuple[str, dict]]) -> str:
    seen: dict[str, str] = {}  # media name -> document name
    for name, document in named.values():
        media = _media_name(document)
        if not media:
            continue
        if seen and media not in seen:
            other_media, other = next(iter(seen.items()))
            raise DocumentError(f"{name} and {other} describe different media ({media}, {other_media})")
        seen.setdefault(media, name)
    return next(iter(seen), "")


def _duration(document: dict) -> float:
    return float((document.get("media") or {}).get("duration_s") or 0.0)


def _shares(emotions: dict | None) -> tuple[tuple[str, float], ...]:
    """``{id: share}`` (persons) or ``{id: {"score": share, ...}}`` (faces, voices), best first."""
    pairs = []
    for emotion_id, value in (emotions or {}).items():
        if emotion_id not in _EMOTION_ORDER:
            raise DocumentError(f"unknown emotion id {emotion_id!r}")
        pairs.append((emotion_id, float(value["score"] if isinstance(value, dict) else value)))
    return tuple(sorted(pairs, key=lambda pair: (-pair[1], _EMOTION_ORDER[pair[0]])))


def _natural(label: str) -> tuple:
    """PERSON_2 before PERSON_10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", label))


def _with_breaks(points: list[tuple[float, object | None]]) -> list[tuple[float, object | None]]:
    """Leading and trailing absences dropped, each run of absences kept as one break."""
    kept: list[tuple[float, object | None]] = []
    for time_s, item in points:
        if item is None and (not kept or kept[-1][1] is None):
            continue
        kept.append((time_s, item))
    while kept and kept[-1][1] is None:
        kept.pop()
    return kept


def _emotion_panel(title: str, points: list[tuple[float, Moment | None]], top: int) -> EmotionPanel:
    moments = tuple(m for _, m in points if m is not None)
    listed = [dict(m.shares) for m in moments]
    means = {e: sum(shares.get(e, 0.0) for shares in listed) / len(listed) for e in EMOTION_IDS}
    chosen = sorted(EMOTION_IDS, key=lambda e: (-means[e], _EMOTION_ORDER[e]))[:top]
    times = tuple(t for t, _ in points)
    lines = tuple(EmotionLine(e, EMOTIONS_BY_ID[e].name, means[e], times,
                              tuple(None if m is None else m.share(e) for _, m in points)) for e in chosen)
    return EmotionPanel(title, lines, moments, min(len(m.shares) for m in moments))


def _missing_note(kind: str, panels) -> list[str]:
    listed = min((p.listed for p in panels if p.listed), default=EMOTION_COUNT)
    if listed >= EMOTION_COUNT:
        return []
    return [f"{kind}: the file lists the top {listed} of {EMOTION_COUNT} emotions per {_UNITS[kind]} "
            f"(--top-k {listed}); lines break where an emotion is not listed"]


@dataclass(frozen=True)
class _PersonIndex:
    """Who is who in a persons document, to name face tracks and voice segments after persons."""

    persons: tuple[dict, ...]
    of_track: dict
    of_segment: dict

    @classmethod
    def empty(cls) -> "_PersonIndex":
        return cls((), {}, {})

    @classmethod
    def of(cls, document: dict) -> "_PersonIndex":
        persons = tuple(document["persons"])
        return cls(persons, {p["track_id"]: p["person_id"] for p in persons if p["track_id"] is not None},
                   {link["segment_index"]: link["person_id"] for link in document["links"]})


def _face_panels(document: dict, top: int, persons: _PersonIndex) -> tuple[list[EmotionPanel], ValuePanel | None]:
    sample_times = {int(f["sample_index"]): float(f["time_s"]) for f in document["frames"]}
    tracks: dict[int, dict[int, dict]] = {}
    for face in document["faces"]:
        sample_times.setdefault(int(face["sample_index"]), float(face["time_s"]))
        tracks.setdefault(int(face["track_id"]), {}).setdefault(int(face["sample_index"]), face)
    samples = sorted(sample_times.items())
    panels, dimension_lines = [], []
    for track_id in sorted(tracks):
        seen = tracks[track_id]
        # every sampled frame: a break where this track was not seen
        points = _with_breaks([(t, seen.get(s)) for s, t in samples])
        person = persons.of_track.get(track_id)
        title = f"face track {track_id}" + (f" ({person})" if person else "")
        panels.append(_emotion_panel(title, [(t, None if f is None else Moment(t, _shares(f["emotions"])))
                                             for t, f in points], top))
        for dimension in dict.fromkeys(k for f in seen.values() for k in f.get("dimensions") or {}):
            dimension_lines.append(ValueLine(
                _DIMENSION_NAMES.get(dimension, dimension), f"track {track_id}", tuple(t for t, _ in points),
                tuple(None if f is None or dimension not in f["dimensions"] else float(f["dimensions"][dimension])
                      for _, f in points)))
    if not dimension_lines:
        return panels, None
    return panels, ValuePanel("face dimensions (raw head outputs)",
                              tuple(dict.fromkeys(line.label for line in dimension_lines)),
                              tuple(dict.fromkeys(line.group for line in dimension_lines)), tuple(dimension_lines))


def _person_panels(document: dict, top: int) -> list[EmotionPanel]:
    cells: dict[str, list[dict]] = {}
    for cell in document["timeline"]:
        cells.setdefault(cell["person_id"], []).append(cell)
    panels = []
    for person in document["persons"]:
        own = sorted(cells.get(person["person_id"], ()), key=lambda c: float(c["start_time"]))
        if not own:
            continue
        points: list[tuple[float, Moment | None]] = []
        previous_end = 0.0
        for cell in own:
            start, end = float(cell["start_time"]), float(cell["end_time"])
            if points and start > previous_end + 1e-6:
                points.append(((previous_end + start) / 2, None))
            middle = (start + end) / 2
            points.append((middle, Moment(middle, _shares((cell.get("fused") or {}).get("emotions")))))
            previous_end = end
        seen_as = [f"track {person['track_id']}" if person["track_id"] is not None else "off screen"]
        seen_as += [person["speaker_id"]] if person.get("speaker_id") else []
        panels.append(_emotion_panel(f"{person['person_id']} ({', '.join(seen_as)}): fused face and voice",
                                     points, top))
    return panels


def _voice_rows(bars: list[VoiceBar], persons: _PersonIndex) -> tuple[str, ...]:
    order = [p["person_id"] for p in persons.persons]
    labels = dict.fromkeys(bar.row for bar in bars)
    return tuple(sorted(labels, key=lambda r: (order.index(r) if r in order else len(order), _natural(r))))


def _voice_panels(document: dict, persons: _PersonIndex) -> tuple[VoicePanel, ValuePanel | None]:
    bars, attribute_lines = [], {}
    for segment in sorted(document["segments"], key=lambda s: (float(s["start_time"]), int(s["segment_index"]))):
        start, end = float(segment["start_time"]), float(segment["end_time"])
        row = persons.of_segment.get(segment["segment_index"]) or segment.get("speaker_id") or "voice"
        bars.append(VoiceBar(start, end, row, Moment(start, _shares(segment["emotions"]))))
        for attribute in VOICE_ATTRIBUTES_DRAWN:
            value = (segment.get("attributes") or {}).get(attribute)
            if value is not None:  # a stroke over the segment, then a break
                attribute_lines.setdefault((attribute, row), []).extend(
                    [(start, float(value)), (end, float(value)), (end, None)])
    rows = _voice_rows(bars, persons)
    panel = VoicePanel("voice segments (top emotion)", rows, tuple(bars),
                       min((len(b.moment.shares) for b in bars), default=EMOTION_COUNT))
    if not attribute_lines:
        return panel, None
    drawn = [a for a in VOICE_ATTRIBUTES_DRAWN if any(key[0] == a for key in attribute_lines)]
    lines = []
    for row in rows:
        for attribute in drawn:
            points = attribute_lines.get((attribute, row), [])[:-1]  # without the last break
            if points:
                lines.append(ValueLine(_ATTRIBUTES[attribute].name, row, tuple(t for t, _ in points),
                                       tuple(v for _, v in points)))
    scales = ", ".join(_scale_text(a) for a in drawn)
    return panel, ValuePanel(f"voice {scales}, per segment", tuple(_ATTRIBUTES[a].name for a in drawn), rows,
                             tuple(lines))


def _scale_text(attribute: str) -> str:
    scale = _ATTRIBUTES[attribute].scale
    return f"{attribute} ({scale.low:g} {scale.low_meaning} .. {scale.high:g} {scale.high_meaning})"


def _voice_panel_of_persons(document: dict, persons: _PersonIndex) -> VoicePanel:
    """Without the voice analysis: the persons document's segments, each with the voice's shares
    (the fused ones where the voice had none)."""
    bars = []
    for segment in sorted(document["segments"], key=lambda s: float(s["start_time"])):
        view = segment.get("voice") or segment.get("fused") or {}
        start = float(segment["start_time"])
        bars.append(VoiceBar(start, float(segment["end_time"]), segment["person_id"],
                             Moment(start, _shares(view.get("emotions")))))
    return VoicePanel("voice segments (top emotion)", _voice_rows(bars, persons), tuple(bars),
                      min((len(b.moment.shares) for b in bars), default=EMOTION_COUNT))
