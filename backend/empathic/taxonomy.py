"""LAION's Empathic Insight taxonomy: 40 emotions, their families, face dimensions, voice attributes.

One stable snake_case id per emotion is used everywhere inside the project. The face checkpoints
name their files in lowercase (``model_jealousy_&_envy_best.pth``) and the voice checkpoints in
Capitalised_Words (``model_Jealousy_&_Envy_best.pth``); both spellings map onto the same id here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    id: str
    name: str


@dataclass(frozen=True)
class Emotion:
    id: str
    name: str  # LAION's display name (face JSON key without the family prefix)
    family: Family
    face_key: str  # part of the face file name between "model_" and "_best.pth"
    voice_key: str  # part of the voice file name between "model_" and "_best.pth"


@dataclass(frozen=True)
class Scale:
    """What the numbers of a dimension or attribute head mean (from LAION's reports)."""

    low: float
    high: float
    low_meaning: str
    high_meaning: str
    neutral: float | None = None


@dataclass(frozen=True)
class Dimension:
    """A head that is not one of the 40 emotions; it never enters the emotion softmax."""

    id: str
    name: str
    file_key: str
    scale: Scale | None = None


POSITIVE_HIGH = Family("positive_high_energy", "Positive High-Energy Emotions")
POSITIVE_LOW = Family("positive_low_energy", "Positive Low-Energy Emotions")
NEGATIVE_HIGH = Family("negative_high_energy", "Negative High-Energy Emotions")
NEGATIVE_LOW = Family("negative_low_energy", "Negative Low-Energy Emotions")
COGNITIVE = Family("cognitive_states", "Cognitive States and Processes")
PHYSICAL = Family("physical_states", "Physical and Exhaustive States")
LONGING = Family("longing_and_lust", "Longing & Lust")

FAMILIES: tuple[Family, ...] = (
    POSITIVE_HIGH, POSITIVE_LOW, NEGATIVE_HIGH, NEGATIVE_LOW, COGNITIVE, PHYSICAL, LONGING,
)


def _emotion(id_: str, name: str, family: Family, face_key: str | None = None,
             voice_key: str | None = None) -> Emotion:
    face = face_key or id_
    voice = voice_key or "_".join(word.capitalize() for word in face.split("_"))
    return Emotion(id_, name, family, face, voice)


# Order follows LAION's reference notebooks; it is the order of every score vector in the project.
EMOTIONS: tuple[Emotion, ...] = (
    _emotion("elation", "Elation", POSITIVE_HIGH),
    _emotion("amusement", "Amusement", POSITIVE_HIGH),
    _emotion("pleasure_ecstasy", "Pleasure/Ecstasy", POSITIVE_HIGH),
    _emotion("astonishment_surprise", "Astonishment/Surprise", POSITIVE_HIGH),
    _emotion("hope_enthusiasm_optimism", "Hope/Enthusiasm/Optimism", POSITIVE_HIGH),
    _emotion("triumph", "Triumph", POSITIVE_HIGH),
    _emotion("awe", "Awe", POSITIVE_HIGH),
    _emotion("teasing", "Teasing", POSITIVE_HIGH),
    _emotion("interest", "Interest", POSITIVE_HIGH),
    _emotion("relief", "Relief", POSITIVE_LOW),
    _emotion("contentment", "Contentment", POSITIVE_LOW),
    _emotion("contemplation", "Contemplation", POSITIVE_LOW),
    _emotion("pride", "Pride", POSITIVE_LOW),
    _emotion("thankfulness_gratitude", "Thankfulness/Gratitude", POSITIVE_LOW),
    _emotion("affection", "Affection", POSITIVE_LOW),
    _emotion("anger", "Anger", NEGATIVE_HIGH),
    _emotion("fear", "Fear", NEGATIVE_HIGH),
    _emotion("distress", "Distress", NEGATIVE_HIGH),
    _emotion("impatience_irritability", "Impatience and Irritability", NEGATIVE_HIGH,
             face_key="impatience_and_irritability", voice_key="Impatience_and_Irritability"),
    _emotion("disgust", "Disgust", NEGATIVE_HIGH),
    _emotion("malevolence_malice", "Malevolence/Malice", NEGATIVE_HIGH),
    _emotion("helplessness", "Helplessness", NEGATIVE_LOW),
    _emotion("sadness", "Sadness", NEGATIVE_LOW),
    _emotion("emotional_numbness", "Emotional Numbness", NEGATIVE_LOW),
    _emotion("jealousy_envy", "Jealousy & Envy", NEGATIVE_LOW,
             face_key="jealousy_&_envy", voice_key="Jealousy_&_Envy"),
    _emotion("embarrassment", "Embarrassment", NEGATIVE_LOW),
    _emotion("contempt", "Contempt", NEGATIVE_LOW),
    _emotion("shame", "Shame", NEGATIVE_LOW),
    _emotion("disappointment", "Disappointment", NEGATIVE_LOW),
    _emotion("doubt", "Doubt", NEGATIVE_LOW),
    _emotion("bitterness", "Bitterness", NEGATIVE_LOW),
    _emotion("concentration", "Concentration", COGNITIVE),
    _emotion("confusion", "Confusion", COGNITIVE),
    _emotion("fatigue_exhaustion", "Fatigue/Exhaustion", PHYSICAL),
    _emotion("pain", "Pain", PHYSICAL),
    _emotion("sourness", "Sourness", PHYSICAL),
    _emotion("intoxication_altered_states", "Intoxication/Altered States of Consciousness", PHYSICAL,
             face_key="intoxication_altered_states_of_consciousness",
             voice_key="Intoxication_Altered_States_of_Consciousness"),
    _emotion("sexual_lust", "Sexual Lust", LONGING),
    _emotion("longing", "Longing", LONGING),
    _emotion("infatuation", "Infatuation", LONGING),
)

EMOTION_IDS: tuple[str, ...] = tuple(e.id for e in EMOTIONS)
EMOTIONS_BY_ID: dict[str, Emotion] = {e.id: e for e in EMOTIONS}

# Face-Small's four extra heads; LAION's face reports list them without scale text.
FACE_DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("valence", "Valence", "valence"),
    Dimension("arousal", "Arousal", "arousal"),
    Dimension("dominance", "Dominance", "dominance"),
    Dimension("emotional_vulnerability", "Emotional Vulnerability", "emotional_vulnerability"),
)

# Voice-Small's 15 attribute heads with the scales printed in LAION's voice report. Beware the
# orientation: names list two poles, but the number does not always grow towards the second one.
VOICE_ATTRIBUTES: tuple[Dimension, ...] = (
    Dimension("valence", "Valence", "Valence",
              Scale(-3, 3, "extremely negative", "extremely positive", 0)),
    Dimension("arousal", "Arousal", "Arousal", Scale(0, 4, "very calm", "very excited", 2)),
    Dimension("submissive_dominant", "Submissive vs. Dominant", "Submissive_vs._Dominant",
              Scale(-3, 3, "extremely submissive", "extremely dominant", 0)),
    Dimension("age", "Age", "Age", Scale(0, 6, "infant/toddler", "very old")),
    Dimension("gender", "Gender", "Gender", Scale(-2, 2, "very masculine", "very feminine", 0)),
    Dimension("serious_humorous", "Serious vs. Humorous", "Serious_vs._Humorous",
              Scale(0, 4, "very serious", "very humorous", 2)),
    Dimension("vulnerable_detached", "Vulnerable vs. Emotionally Detached",
              "Vulnerable_vs._Emotionally_Detached",
              Scale(0, 4, "very vulnerable", "very emotionally detached", 2)),
    Dimension("confident_hesitant", "Confident vs. Hesitant", "Confident_vs._Hesitant",
              Scale(0, 4, "very confident", "very hesitant", 2)),
    Dimension("warm_cold", "Warm vs. Cold", "Warm_vs._Cold", Scale(-2, 2, "very cold", "very warm", 0)),
    Dimension("monotone_expressive", "Monotone vs. Expressive", "Monotone_vs._Expressive",
              Scale(0, 4, "very monotone", "very expressive", 2)),
    Dimension("high_low_pitched", "High-Pitched vs. Low-Pitched", "High-Pitched_vs._Low-Pitched",
              Scale(0, 4, "very high-pitched", "very low-pitched", 2)),
    Dimension("soft_harsh", "Soft vs. Harsh", "Soft_vs._Harsh", Scale(-2, 2, "very harsh", "very soft", 0)),
    Dimension("authenticity", "Authenticity", "Authenticity",
              Scale(0, 4, "very artificial", "very genuine", 2)),
    Dimension("recording_quality", "Recording Quality", "Recording_Quality",
              Scale(0, 4, "very low", "very high", 2)),
    Dimension("background_noise", "Background Noise", "Background_Noise",
              Scale(0, 3, "no noise", "intense noise")),
)

@dataclass(frozen=True)
class QualityExpert:
    """One of Voice-Plus's audio-quality heads: it reads pooled encoder features (not the full
    sequence), reports a value beside the attributes, and never enters the emotion softmax."""

    id: str
    name: str
    file_key: str
    distilled_from: str  # the rater whose scores it learned, as LAION names it
    nominal_range: tuple[float, float]  # "MOS-like, roughly 1-5, higher is better" (LAION's guide)


# Names and files: LAION's own server (github.com/LAION-AI/Retrieval-Augmented-Voice-Cloning at a7f352e,
# servers/ei_server.py, QUALITY_EXPERT_FILES). Which rater each one distils and the rough range:
# LAION's guide (github.com/LAION-AI/voicenet at f4e4579, guides/emonet_empathic_insight.md: "Overall Quality,
# Speech Quality, Background Quality (distilled from Microsoft DNSMOS), and Content Enjoyment
# (distilled from Meta AudioBox)"; "MOS-like (roughly 1-5, higher is better)"). The model card
# (commit 441d220) states neither a range nor a clamp: values outside it occur.
VOICE_QUALITY_EXPERTS: tuple[QualityExpert, ...] = (
    QualityExpert("overall_quality", "Overall Quality", "score_overall_quality", "DNSMOS", (1.0, 5.0)),
    QualityExpert("speech_quality", "Speech Quality", "score_speech_quality", "DNSMOS", (1.0, 5.0)),
    QualityExpert("background_quality", "Background Quality", "score_background_quality", "DNSMOS", (1.0, 5.0)),
    QualityExpert("content_enjoyment", "Content Enjoyment", "score_content_enjoyment", "AudioBox", (1.0, 5.0)),
)

HEAD_FILE_PREFIX = "model_"
HEAD_FILE_SUFFIX = "_best.pth"


def head_file_name(file_key: str) -> str:
    return f"{HEAD_FILE_PREFIX}{file_key}{HEAD_FILE_SUFFIX}"


def file_key_of(file_name: str) -> str | None:
    """``model_jealousy_&_envy_best.pth`` -> ``jealousy_&_envy``; None for other files."""
    if file_name.startswith(HEAD_FILE_PREFIX) and file_name.endswith(HEAD_FILE_SUFFIX):
        return file_name[len(HEAD_FILE_PREFIX):-len(HEAD_FILE_SUFFIX)]
    return None


FACE_KEY_TO_ID: dict[str, str] = {e.face_key: e.id for e in EMOTIONS}
VOICE_KEY_TO_ID: dict[str, str] = {e.voice_key: e.id for e in EMOTIONS}


def emotion_id_for_file(file_name: str) -> str | None:
    """The emotion id of a face or voice head file, whichever spelling it uses."""
    key = file_key_of(file_name)
    if key is None:
        return None
    return FACE_KEY_TO_ID.get(key) or VOICE_KEY_TO_ID.get(key)
