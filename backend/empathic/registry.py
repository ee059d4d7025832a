"""The model variants, kept as data: which repository, which revision, which files, which backbone.

Adding a variant means adding an entry here, not an ``if model_size == ...`` branch elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from .taxonomy import (EMOTIONS, FACE_DIMENSIONS, VOICE_ATTRIBUTES, VOICE_QUALITY_EXPERTS, Dimension, QualityExpert,
                       head_file_name)

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
    quality: tuple[QualityExpert, ...] = ()  # pooled-feature audio-quality heads (Voice-Plus)
    # Revisions tried in order when ``repo.revision`` lacks the head files (see VOICE_LARGE_HEADS_AT).
    fallback_revisions: tuple[str, ...] = ()

    def emotion_file_names(self) -> tuple[str, ...]:
        keys = (e.face_key if self.emotion_key_style == "face" else e.voice_key for e in EMOTIONS)
        return tuple(head_file_name(k) for k in keys)

    def dimension_file_names(self) -> tuple[str, ...]:
        return tuple(head_file_name(d.file_key) for d in self.dimensions)

    def head_file_names(self) -> tuple[str, ...]:
        """The heads that read the full embedding: the 40 emotions, then the dimensions."""
        return self.emotion_file_names() + self.dimension_file_names()

    def quality_file_names(self) -> tuple[str, ...]:
        return tuple(head_file_name(q.file_key) for q in self.quality)

    def download_patterns(self) -> tuple[str, ...]:
        files = self.head_file_names() + self.quality_file_names()
        return files + ((self.neutral.file_name,) if self.neutral else ())

    def revisions(self) -> tuple[str, ...]:
        """Every revision the head files are looked for at, in order."""
        return (self.repo.revision, *self.fallback_revisions)


@dataclass(frozen=True)
class PublishedChecksums:
    """SHA256 of files as a repository's Hugging Face file pages show them ("SHA256:" of an LFS or
    Xet file). Only files whose page was read are listed: the others are not verified."""

    sha256: Mapping[str, str]
    source: str  # the pages they were read from
    files_at: str  # the revision the pages show the files at


# Revisions. A pin is the newest full 40-hex commit hash that stored Hugging Face pages show for the
# repository (read 2026-12 with this project's search tool; the hub itself is not reachable from the
# build machines). Where the pages show only short hashes, or full hashes whose order cannot be told,
# the entry follows "main": a guessed hash would be worse than none. Every output records the commit
# that was resolved (the snapshot folder's name) and the revision that was asked for;
# ``--revision``/MODEL_REVISIONS choose another one (a branch, a tag, a hash).
#
# main: google/siglip2-so400m-patch16-384 - no commit page of this repository is stored.
SIGLIP2_SO400M = RepoRef("google/siglip2-so400m-patch16-384", "main")
# main: mkrausio/EmoWhisper-AnS-Small-v0.1 - no commit page stored.
EMOWHISPER_SMALL = RepoRef("mkrausio/EmoWhisper-AnS-Small-v0.1", "main")
# main: laion/BUD-E-Whisper - only the model card is stored (https://huggingface.co/laion/BUD-E-Whisper),
# no commit. Its later fine-tunes (BUD-E-Whisper_V1.1, _V1.2, _V1.21) embed differently: never swap them in.
BUD_E_WHISPER = RepoRef("laion/BUD-E-Whisper", "main")

# laion/Empathic-Insight-Voice-Plus: 441d220122d77cc43b60ffe3e13bf9358bf2fe8d "Add 55 emotion experts from
# Empathic-Insight-Voice-Small + 4 new quality experts (DNSMOS + AudioBox)" (date not shown on the stored
# pages). https://huggingface.co/laion/Empathic-Insight-Voice-Plus/commit/441d220122d77cc43b60ffe3e13bf9358bf2fe8d.diff
# The 13 stored head pages on main (e.g. .../blob/main/model_Anger_best.pth) name 441d220 as their file's last
# commit; main's newest commit, ffc084d "Update README.md", is shown only short and changes the card alone.
VOICE_PLUS_PIN = "441d220122d77cc43b60ffe3e13bf9358bf2fe8d"

# Voice-Large's heads. The only stored page of one of its heads is
# https://huggingface.co/laion/Empathic-Insight-Voice-Large/blob/refs%2Fpr%2F3/model_Contempt_best.pth
# (590 MB, last commit 9bd1876 "Upload model_Contempt_best.pth with huggingface_hub" by the repository's
# owner). refs/pr/3 is felfri's open "Update README.md" pull request
# (https://huggingface.co/laion/Empathic-Insight-Voice-Large/discussions): a pull request branches off main
# and adds its own commits, so an owner's upload commit in its history was on main when the request was
# opened. The heads are therefore looked for on main under Voice-Small's names, and only where a snapshot
# of main lacks them does resolution fall back to refs/pr/3. No full commit hash of Voice-Large is stored,
# so neither ref is pinned; the commit resolved is recorded as always.
VOICE_LARGE_HEADS_AT = ("main", "refs/pr/3")

FACE_MODELS: dict[str, HeadSet] = {
    "small": HeadSet(
        modality="face",
        size="small",
        # main: the stored head pages (refs/pr/1, refs/pr/2) show only the short upload commit 05000ef.
        repo=RepoRef("laion/Empathic-Insight-Face-Small", "main"),
        backbone=SIGLIP2_SO400M,
        emotion_key_style="face",
        dimensions=FACE_DIMENSIONS,
        neutral=NeutralStats("EmoNet-Face-Small-average-scores-for-neutral-faces.json", "flat"),
    ),
    "large": HeadSet(
        modality="face",
        size="large",
        # main: only the model card is stored (https://huggingface.co/laion/Empathic-Insight-Face-Large).
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
        # main: three full card commits are stored (5e697df7fd75fc594c208d3713d403d08f6365ec,
        # d3949db9e27e0666f32c0a0491d73f6de0dacca6, 08b1dc59710031a2c2bebfdedfb71b991f52eef9, under
        # https://huggingface.co/laion/Empathic-Insight-Voice-Small/commit/...), but no page shows their
        # dates or order, nor whether the heads were uploaded before them: pinning one could miss the heads.
        repo=RepoRef("laion/Empathic-Insight-Voice-Small", "main"),
        backbone=EMOWHISPER_SMALL,
        emotion_key_style="voice",
        dimensions=VOICE_ATTRIBUTES,
    ),
    "large": HeadSet(
        modality="voice",
        size="large",
        repo=RepoRef("laion/Empathic-Insight-Voice-Large", VOICE_LARGE_HEADS_AT[0]),
        backbone=EMOWHISPER_SMALL,
        emotion_key_style="voice",
        dimensions=VOICE_ATTRIBUTES,
        fallback_revisions=VOICE_LARGE_HEADS_AT[1:],
    ),
    # Voice-Small's 55 heads (same files, same names) plus 4 quality experts; the card names
    # laion/BUD-E-Whisper as the frozen encoder, so that is this entry's own encoder.
    "plus": HeadSet(
        modality="voice",
        size="plus",
        repo=RepoRef("laion/Empathic-Insight-Voice-Plus", VOICE_PLUS_PIN),
        backbone=BUD_E_WHISPER,
        emotion_key_style="voice",
        dimensions=VOICE_ATTRIBUTES,
        quality=VOICE_QUALITY_EXPERTS,
    ),
}

VOICE_ENCODERS: dict[str, RepoRef] = {"emowhisper": EMOWHISPER_SMALL, "bud-e-whisper": BUD_E_WHISPER}

# The backbone repos hold more than inference needs (e.g. flax or onnx copies); fetch only these.
BACKBONE_PATTERNS: tuple[str, ...] = (
    "config.json", "preprocessor_config.json", "*.safetensors", "*.safetensors.index.json",
    "tokenizer*", "special_tokens_map.json", "spiece.model", "vocab.json", "merges.txt",
    "normalizer.json", "added_tokens.json", "generation_config.json",
)

# Published SHA256 of weight files, by repository. They are checked when a file is fetched by
# ``empathic models download`` (unless --no-verify) and on load with --verify-weights /
# VERIFY_WEIGHTS, and only at the registry's own revision: another revision may hold other files.
PUBLISHED_CHECKSUMS: dict[str, PublishedChecksums] = {
    "laion/Empathic-Insight-Voice-Plus": PublishedChecksums(
        sha256={
            "model_Anger_best.pth": "7193c17d0519819daa84b3076a67037d32794eb46a3c5c6666a9cacb8d92d936",
            "model_Authenticity_best.pth": "f24301cfcd1cb8f3b6f084340f7d650cd97e903694f7774bfac97b77c799ac0a",
            "model_Concentration_best.pth": "1ba6b214e6085385e934161384ce37b94118ad24a6afe249c5acf9558e511242",
            "model_Confident_vs._Hesitant_best.pth":
                "b6db73d4c2477c5edca4e62fb76a35ff772e495777eef3acaeef5647c05d6629",
            "model_Contemplation_best.pth": "6b80e1ea9f458fdee525fac692e0e3195b0dbffdd53d56650488f73a82e57d83",
            "model_Contempt_best.pth": "93c8b276bd3775a23b56205a045daa6864031e418f603c4937d09bdc355e3ddd",
            "model_Disappointment_best.pth": "5284d7e00699667810c4b4ce57c5e14fd720e7ee398dfd21194d09271b311640",
            "model_Distress_best.pth": "9fbffa8cf062ff244a3cf22873a879d34a05a03208d44cc8004c9eedf5134058",
            "model_Doubt_best.pth": "0a45d0c2f596c384423ccb30fd5f82c248705172e0f667f67068ee0adecbbc46",
            "model_Gender_best.pth": "608ba1f1efdfefafe2f006e5ca8d5dc743f6971c7cc52444ccbd3f6dd0d9bbc8",
            "model_Helplessness_best.pth": "4408052e892f6b2eb3a7c6c4e7da8b747f1f3922f1bf8ca094c856f7023b13ae",
            "model_Pride_best.pth": "3a46d5798dd17a2464dc1645c1f71dd5c0a8620769b595a3651f4f598c438b3b",
            "model_Relief_best.pth": "11a997a03bd57c68b2609c64216a7563d67208c742f020e502fa25960d39a7e1",
        },
        source="https://huggingface.co/laion/Empathic-Insight-Voice-Plus/blob/main/<file>",
        files_at="441d220",
    ),
    "laion/Empathic-Insight-Voice-Large": PublishedChecksums(
        sha256={"model_Contempt_best.pth": "b41d862015be4082730925f27c402d9ee233fb4d0581b1dd218fb38df007fab6"},
        source="https://huggingface.co/laion/Empathic-Insight-Voice-Large/blob/refs%2Fpr%2F3/model_Contempt_best.pth",
        files_at="9bd1876",
    ),
    "laion/Empathic-Insight-Face-Small": PublishedChecksums(
        sha256={
            "model_contempt_best.pth": "59ef2f9e46ce0a9d72024263a40ee19026a7421193afdd86acabbc65123471bc",
            "model_contentment_best.pth": "153e2176703f2bcb998c0494704f738681b8f91812cbd1b314a41c9c43cab26e",
        },
        source="https://huggingface.co/laion/Empathic-Insight-Face-Small/blob/refs%2Fpr%2F2/model_contempt_best.pth, "
               "https://huggingface.co/laion/Empathic-Insight-Face-Small/blob/refs%2Fpr%2F1/model_contentment_best.pth",
        files_at="05000ef",
    ),
}


def checksums_for(ref: RepoRef, registry_revisions: Iterable[str]) -> PublishedChecksums | None:
    """The published checksums to check ``ref`` against: those of its repository where ``ref`` asks
    for one of the registry's own revisions, else None (another revision may hold other files)."""
    known = PUBLISHED_CHECKSUMS.get(ref.repo_id)
    return known if known is not None and ref.revision in tuple(registry_revisions) else None


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


@dataclass(frozen=True)
class RevisionChoices:
    """Revisions a user chose instead of the registry's, by repository id (``--revision``,
    MODEL_REVISIONS). A chosen revision is used as given: no fallback, no published checksums."""

    by_repo: Mapping[str, str] = field(default_factory=dict)

    def apply(self, ref: RepoRef) -> RepoRef:
        chosen = self.by_repo.get(ref.repo_id)
        return ref if chosen is None else RepoRef(ref.repo_id, chosen)

    def apply_heads(self, spec: HeadSet) -> HeadSet:
        chosen = self.by_repo.get(spec.repo.repo_id)
        if chosen is None:
            return spec
        return replace(spec, repo=RepoRef(spec.repo.repo_id, chosen), fallback_revisions=())

    def as_parameters(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(self.by_repo.items()))


def parse_revision_choices(texts: Iterable[str], head_repos: Iterable[str] = ()) -> RevisionChoices:
    """``ORG/NAME@REVISION`` items (a bare ``REVISION`` stands for the one head repository in
    ``head_repos``; with several it must name its repository). One line per mistake, naming it."""
    heads = tuple(dict.fromkeys(head_repos))
    chosen: dict[str, str] = {}
    for text in texts:
        item = text.strip()
        repo_id, at, revision = item.rpartition("@")
        if not at:
            if len(heads) != 1:
                where = f"the run's head repositories are {', '.join(heads)}" if heads else "no model is chosen"
                raise ValueError(f"revision {item!r} does not say its repository ({where}): write ORG/NAME@{item}")
            repo_id, revision = heads[0], item
        parts = repo_id.split("/")
        if len(parts) != 2 or not all(parts) or not revision or any(c.isspace() for c in item):
            raise ValueError(f"revision {item!r}: expected ORG/NAME@REVISION or REVISION")
        if chosen.get(repo_id, revision) != revision:
            raise ValueError(f"two revisions for {repo_id}: {chosen[repo_id]} and {revision}")
        chosen[repo_id] = revision
    return RevisionChoices(chosen)
