"""From a project's own label names to LAION's 40 emotions.

A label (or choice) stands for a set of LAION emotion ids. It is found, in this order, from:
  1. ``predicted_values="a, b"`` on the Label/Choice: each name resolved as below, then united;
  2. the label itself, as an emotion (id, display name or the file spelling, case and punctuation
     ignored: "Jealousy & Envy", "jealousy_envy"; or one unambiguous part of a compound name:
     "Surprise", "Gratitude");
  3. a group: one of LAION's seven families ("Negative Low-Energy Emotions", "cognitive_states"),
     or "positive" / "negative" (the high- and low-energy families together): nine groups;
  4. the basic-emotions preset: happy, sad, angry, fearful, surprised, disgusted and their synonyms.
A label that resolves to nothing (e.g. "Neutral", "Face") is left alone and never predicted.

A label's score for a face or segment is the largest share among its emotions: LAION's paper counts
a coarse label as present when any of its fine emotions beats 1.5 x chance, which is also the
default threshold here (1.5 / 40).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..taxonomy import EMOTIONS, FAMILIES, NEGATIVE_HIGH, NEGATIVE_LOW, POSITIVE_HIGH, POSITIVE_LOW

DEFAULT_THRESHOLD = 1.5 / len(EMOTIONS)  # LAION's "1.5 x uniform chance" over the 40 emotions


class ConfigError(ValueError):
    """The labeling config cannot be served by this backend."""


class UnmappableConfigError(ConfigError):
    """No label of a control can be mapped onto LAION's emotions."""


def normalise(name: str) -> str:
    """Case and punctuation folded: "Jealousy & Envy" -> "jealousy_envy"."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _family_members(*families) -> tuple[str, ...]:
    return tuple(e.id for e in EMOTIONS if e.family in families)


def _build_names() -> dict[str, tuple[str, ...]]:
    names: dict[str, tuple[str, ...]] = {}
    # Basic-emotions preset (the lowest priority: an exact emotion name wins over it).
    basic = {
        ("happy", "happiness", "joy", "joyful"): ("elation", "amusement", "pleasure_ecstasy", "contentment",
                                                 "triumph", "hope_enthusiasm_optimism", "relief"),
        ("sad", "unhappy"): ("sadness", "disappointment", "helplessness"),
        ("angry", "mad", "annoyed"): ("anger", "impatience_irritability", "bitterness", "malevolence_malice"),
        ("afraid", "fearful", "scared", "anxious"): ("fear", "distress"),
        ("surprised",): ("astonishment_surprise",),
        ("disgusted",): ("disgust",),
    }
    for words, ids in basic.items():
        for word in words:
            names[word] = ids
    groups = {"positive": _family_members(POSITIVE_HIGH, POSITIVE_LOW),
              "negative": _family_members(NEGATIVE_HIGH, NEGATIVE_LOW)}
    for word, ids in groups.items():
        names[word] = names[f"{word}_emotions"] = ids
    for family in FAMILIES:
        names[normalise(family.id)] = names[normalise(family.name)] = _family_members(family)
    # Parts of compound names ("Pleasure/Ecstasy" -> "ecstasy"), when only one emotion has them.
    parts: dict[str, set[str]] = {}
    for emotion in EMOTIONS:
        for part in re.split(r"/| and | & |\s*_\s*", emotion.name.lower()):
            if part.strip() and normalise(part) != normalise(emotion.name):
                parts.setdefault(normalise(part), set()).add(emotion.id)
    for part, ids in parts.items():
        if len(ids) == 1 and part not in ("of", "states", "altered"):
            names[part] = tuple(ids)
    for emotion in EMOTIONS:
        for spelling in (emotion.id, emotion.name, emotion.face_key, emotion.voice_key):
            names[normalise(spelling)] = (emotion.id,)
    return names


NAMES: dict[str, tuple[str, ...]] = _build_names()


def resolve(name: str) -> tuple[str, ...]:
    """The emotion ids a name stands for (taxonomy order); empty when it names none."""
    ids = NAMES.get(normalise(name), ())
    return tuple(e.id for e in EMOTIONS if e.id in ids)


def usable_names() -> str:
    """What a label may be called, for error messages."""
    families = ", ".join(f.name for f in FAMILIES)
    return (f"any of LAION's 40 emotions (e.g. {', '.join(e.name for e in EMOTIONS[:4])}, ...), a family "
            f"({families}), positive, negative, or happy, sad, angry, fearful, surprised, disgusted; or "
            f"map a label with predicted_values=\"elation, amusement\"")


@dataclass(frozen=True)
class LabelTarget:
    label: str  # the value as written in the labeling config
    emotion_ids: tuple[str, ...]


@dataclass(frozen=True)
class LabelMapping:
    """The mappable labels of one control, in config order, and those left alone."""

    control: str
    targets: tuple[LabelTarget, ...]
    unmapped: tuple[str, ...]

    def scores(self, shares: Mapping[str, float]) -> list[tuple[str, float]]:
        """(label, score) best first: a label's score is the largest share among its emotions."""
        scored = [(t.label, max(shares.get(i, 0.0) for i in t.emotion_ids)) for t in self.targets]
        # Stable: ties keep the config's order, so the same input always gives the same labels.
        return sorted(scored, key=lambda item: -item[1])


def map_labels(control: str, labels: Mapping[str, Mapping[str, str]]) -> LabelMapping:
    """``labels``: {label value: its XML attributes} as the labeling config lists them."""
    targets, unmapped = [], []
    for value, attributes in labels.items():
        predicted = attributes.get("predicted_values")
        if predicted:
            ids: set[str] = set()
            for name in predicted.split(","):
                found = resolve(name.strip())
                if name.strip() and not found:
                    raise UnmappableConfigError(
                        f"{control}: predicted_values of {value!r} names {name.strip()!r}, which is not a "
                        f"LAION emotion or group; use {usable_names()}")
                ids.update(found)
            emotion_ids = tuple(e.id for e in EMOTIONS if e.id in ids)
        else:
            emotion_ids = resolve(value)
        if emotion_ids:
            targets.append(LabelTarget(value, emotion_ids))
        else:
            unmapped.append(value)
    return LabelMapping(control, tuple(targets), tuple(unmapped))


def require_mappable(mapping: LabelMapping) -> LabelMapping:
    if not mapping.targets:
        shown = ", ".join(repr(v) for v in mapping.unmapped[:8]) or "no labels"
        raise UnmappableConfigError(f"{mapping.control}: none of its labels ({shown}) maps onto LAION's "
                                    f"emotions; use {usable_names()}")
    return mapping
