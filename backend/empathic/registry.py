"""The model variants, kept as data: which repository, which revision, which files, which backbone.

Adding a variant means adding an entry here, not an ``if model_size == ...`` branch elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .taxonomy import EMOTIONS, FACE_DIMENSIONS, VOICE_ATTRIBUTES, Dimension, head_file_name

Modality = Literal["face", "voice"]
NeutralFormat = Literal["flat", "nested"]


@dataclass(frozen=True)
class RepoRef:
    """A Hugging Face model repository at a revision (branch, tag or commit hash)."""

    repo_id: str
    revision: str

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.revision}"


@dataclass(frozen=True)
class NeutralStats:
    """The per-head means of neutral faces that LAION subtracts from the raw scores."""

    file_name: str
    format: NeutralFormat  # "flat": {key: mean}; "nested": {key: {"mean": m, "std": s}}


@dataclass(frozen=True)
class HeadSet:
    modality: Modality
    size: str
    repo: RepoRef
    backbone: RepoRef
    emotion_key_style: Literal["face", "voice"]  # lowercase face keys or Capitalised voice keys
    dimensions: tuple[Dimension, ...]  # extra heads beside the 40 emotions, in output order
    neutral: NeutralStats | None = None

    def emotion_file_names(self) -> tuple[str, ...]:
        keys = (e.face_key if self.emotion_key_style == "face" else e.voice_key for e in EMOTIONS)
        return tuple(head_file_name(k) for k in keys)

    def dimension_file_names(self) -> tuple[str, ...]:
        return tuple(head_file_name(d.file_key) for d in self.dimensions)

    def head_file_names(self) -> tuple[str, ...]:
        return self.emotion_file_names() + self.dimension_file_names()

    def download_patterns(self) -> tuple[str, ...]:
        files = self.head_file_names()
        return files + ((self.neutral.file_name,) if self.neutral else ())


# Revisions: Hugging Face commit hashes could not be read from this build environment, so each
# repository follows "main" and every output records the commit hash that was actually resolved
# (the snapshot folder's name). Replace a "main" by a commit hash here to freeze a variant.
SIGLIP2_SO400M = RepoRef("google/siglip2-so400m-patch16-384", "main")
EMOWHISPER_SMALL = RepoRef("mkrausio/EmoWhisper-AnS-Small-v0.1", "main")
BUD_E_WHISPER = RepoRef("laion/BUD-E-Whisper", "main")

FACE_MODELS: dict[str, HeadSet] = {
    "small": HeadSet(
        modality="face",
        size="small",
        repo=RepoRef("laion/Empathic-Insight-Face-Small", "main"),
        backbone=SIGLIP2_SO400M,
        emotion_key_style="face",
        dimensions=FACE_DIMENSIONS,
        neutral=NeutralStats("EmoNet-Face-Small-average-scores-for-neutral-faces.json", "flat"),
    ),
    "large": HeadSet(
        modality="face",
        size="large",
        repo=RepoRef("laion/Empathic-Insight-Face-Large", "main"),
        backbone=SIGLIP2_SO400M,
        emotion_key_style="face",
        dimensions=(),
        neutral=NeutralStats("neutral_stats_cache-_human-binary-big-mlps.json", "nested"),
    ),
}

VOICE_MODELS: dict[str, HeadSet] = {
    "small": HeadSet(
        modality="voice",
        size="small",
        repo=RepoRef("laion/Empathic-Insight-Voice-Small", "main"),
        backbone=EMOWHISPER_SMALL,
        emotion_key_style="voice",
        dimensions=VOICE_ATTRIBUTES,
    ),
    "large": HeadSet(
        modality="voice",
        size="large",
        repo=RepoRef("laion/Empathic-Insight-Voice-Large", "main"),
        backbone=EMOWHISPER_SMALL,
        emotion_key_style="voice",
        dimensions=VOICE_ATTRIBUTES,
    ),
}

VOICE_ENCODERS: dict[str, RepoRef] = {"emowhisper": EMOWHISPER_SMALL, "bud-e-whisper": BUD_E_WHISPER}

# The backbone repos hold more than inference needs (e.g. flax or onnx copies); fetch only these.
BACKBONE_PATTERNS: tuple[str, ...] = (
    "config.json", "preprocessor_config.json", "*.safetensors", "*.safetensors.index.json",
    "tokenizer*", "special_tokens_map.json", "spiece.model", "vocab.json", "merges.txt",
    "normalizer.json", "added_tokens.json", "generation_config.json",
)


def face_model(size: str) -> HeadSet:
    try:
        return FACE_MODELS[size]
    except KeyError:
        raise ValueError(f"unknown face model size {size!r}; choose one of {sorted(FACE_MODELS)}") from None


def voice_model(size: str) -> HeadSet:
    try:
        return VOICE_MODELS[size]
    except KeyError:
        raise ValueError(f"unknown voice model size {size!r}; choose one of {sorted(VOICE_MODELS)}") from None
