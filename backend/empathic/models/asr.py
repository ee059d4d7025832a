"""Optional speech transcription of voice segments with a Whisper checkpoint (``--transcribe``).

Each clip is one Whisper window (<= 30 s, zero-padded to 30 s by the feature extractor) and is
decoded in a single greedy pass: task "transcribe", the given language or Whisper's own per-clip
language detection, and no timestamps. Segments longer than a window must be split by the caller;
Whisper's long-form mode (timestamps, temperature fallback, conditioning on previous text) is not
used, so a clip's text depends only on that clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..audio import SAMPLE_RATE
from ..hub import ModelNeed, ResolvedRepo, WeightSources, download_command, require_files, resolve_needs
from ..registry import BACKBONE_PATTERNS, RepoRef
from .quiet import quiet_transformers
from .runtime import Runtime

# Pinned: 973afd24965f72e36ca33b3055d56a652f456b4d, "Add missing merge to tokenizer (#38)", merged
# 2024-02-29 (https://huggingface.co/openai/whisper-small/tree/973afd24965f72e36ca33b3055d56a652f456b4d,
# https://huggingface.co/openai/whisper-small/discussions/38): the newest full hash the stored pages
# show (67 commits in its history; the older 0fcaaf3998ef7d751b3c575054e200bbe1818c8d had 61).
DEFAULT_ASR_MODEL = RepoRef("openai/whisper-small", "973afd24965f72e36ca33b3055d56a652f456b4d")
MAX_CLIP_S = 30.0  # one Whisper input window
# The config, tokenizer, feature extractor, generation config and safetensors weights; the Whisper
# repos also carry TensorFlow, Flax and pickle copies of the same weights, which are not fetched.
ASR_PATTERNS = BACKBONE_PATTERNS
REQUIRED_FILES = ("config.json", "preprocessor_config.json", "generation_config.json")


def parse_asr_repo(repo: RepoRef | str) -> RepoRef:
    """``ORG/NAME`` (revision "main"; the pinned one for the default model) or ``ORG/NAME@REVISION``."""
    if isinstance(repo, RepoRef):
        return repo
    repo_id, at, revision = repo.strip().partition("@")
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or (at and not revision):
        raise ValueError(f"ASR model {repo!r}: expected ORG/NAME or ORG/NAME@REVISION")
    if not revision:
        revision = DEFAULT_ASR_MODEL.revision if repo_id == DEFAULT_ASR_MODEL.repo_id else "main"
    return RepoRef(repo_id, revision)


def asr_needs(repo: RepoRef | str) -> tuple[ModelNeed, ...]:
    """The speech recognition repository ``--transcribe`` loads."""
    ref = parse_asr_repo(repo)
    # The default model and revision are left out of the command, so the usual one stays short.
    fetch = ("--asr",) if ref == DEFAULT_ASR_MODEL else ("--asr", ref.repo_id if ref.revision == "main" else str(ref))
    return (ModelNeed(ref, ASR_PATTERNS, REQUIRED_FILES, fetch),)


@dataclass(frozen=True)
class TranscriberInfo:
    repo: str
    revision: str  # the commit actually used ("local" for a plain folder)
    requested_revision: str
    language: str | None  # None: detected per clip
    precision: str

    def to_dict(self) -> dict:
        return {"repo": self.repo, "revision": self.revision, "requested_revision": self.requested_revision,
                "language": self.language or "auto", "precision": self.precision}


def _language_token(language: str, generation_config) -> str:
    """The ``<|xx|>`` token for "en", "english" or "<|en|>", checked against the checkpoint now,
    rather than on the first batch, so a typo fails before any audio is decoded."""
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    lang_to_id = getattr(generation_config, "lang_to_id", None) or {}
    name = language.strip().lower()
    code = TO_LANGUAGE_CODE.get(name, name)
    token = code if code.startswith("<|") else f"<|{code}|>"
    if token not in lang_to_id:
        known = sorted(t[2:-2] for t in lang_to_id)
        raise ValueError(f"language {language!r} is not one this model knows; use one of {known}")
    return token


class Transcriber:
    """Greedy Whisper transcription of 16 kHz mono clips of at most 30 s each."""

    def __init__(self, files: ResolvedRepo, runtime: Runtime, language: str | None = None):
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        with quiet_transformers():
            self.processor = WhisperProcessor.from_pretrained(files.path)
            self.model = WhisperForConditionalGeneration.from_pretrained(files.path, dtype=runtime.dtype)
        self.model.to(runtime.device).eval()
        self.runtime = runtime
        extractor = self.processor.feature_extractor
        if extractor.sampling_rate != SAMPLE_RATE:
            raise ValueError(f"{files.ref.repo_id}: the feature extractor expects "
                             f"{extractor.sampling_rate} Hz, not {SAMPLE_RATE}")
        generation_config = self.model.generation_config
        # English-only checkpoints (*.en) have no language or task tokens, and generate refuses both;
        # so do generation configs too old to map them (those decode as their forced_decoder_ids say).
        self.multilingual = (getattr(generation_config, "is_multilingual", True) is not False
                             and bool(getattr(generation_config, "lang_to_id", None))
                             and bool(getattr(generation_config, "task_to_id", None)))
        self.language_token: str | None = None
        if language is not None:
            if self.multilingual:
                self.language_token = _language_token(language, generation_config)
            elif language.strip().lower() not in ("en", "english", "<|en|>"):
                raise ValueError(f"{files.ref.repo_id} is an English-only model; it cannot transcribe "
                                 f"language {language!r}")
        if self.language_token:
            info_language = self.language_token[2:-2]
        else:  # detected per clip (None), or English for an English-only model
            info_language = "en" if getattr(generation_config, "is_multilingual", None) is False else None
        self.info = TranscriberInfo(
            repo=files.ref.repo_id, revision=files.commit, requested_revision=files.ref.revision,
            language=info_language, precision=runtime.precision_name)

    @classmethod
    def load(cls, repo: RepoRef | str, sources: WeightSources, runtime: Runtime,
             language: str | None = None) -> "Transcriber":
        needs = asr_needs(repo)
        files = resolve_needs(needs, sources)[needs[0].ref]
        if not any(Path(files.path).glob("*.safetensors")):  # single-file or sharded weights
            require_files(files, ("model.safetensors",), download_command(needs))
        return cls(files, runtime, language)

    def _features(self, clips: list[np.ndarray]) -> torch.Tensor:
        # Padded (with zeros) to the full 30 s window, as Whisper was trained; the padding is the same
        # for every clip, so a clip's features do not depend on the others in its batch.
        return self.processor.feature_extractor(
            clips, sampling_rate=SAMPLE_RATE, return_tensors="pt", padding="max_length", truncation=False,
        )["input_features"]

    @torch.inference_mode()
    def _generate(self, features: torch.Tensor) -> torch.Tensor:
        inputs = features.to(self.runtime.device, self.runtime.dtype, non_blocking=True)
        options: dict = {}
        if self.multilingual:
            # An explicit task makes generate ignore the legacy forced_decoder_ids of the checkpoint;
            # language None makes it detect the language of each clip separately.
            options.update(task="transcribe", language=self.language_token)
        with quiet_transformers():
            return self.model.generate(
                inputs,
                # Greedy and deterministic, whatever the checkpoint's generation config suggests: no
                # beams, no sampling (temperature None means no temperature fallback either).
                num_beams=1, do_sample=False, temperature=None,
                return_timestamps=False,
                # One decoder pass per window: without this, timestamp tokens predicted anyway would
                # make generate seek and decode the rest of the window again.
                force_unique_generate_call=True,
                **options,
            )

    def transcribe(self, clips: list[np.ndarray]) -> list[str]:
        """One stripped text per clip (16 kHz mono float32, at most 30 s), in order."""
        prepared = []
        for i, clip in enumerate(clips):
            samples = np.asarray(clip, dtype=np.float32)
            if samples.ndim != 1:
                raise ValueError(f"clip {i}: expected mono samples (1-D), got shape {samples.shape}")
            if len(samples) > MAX_CLIP_S * SAMPLE_RATE:
                raise ValueError(f"clip {i} lasts {len(samples) / SAMPLE_RATE:.2f} s, more than the "
                                 f"{MAX_CLIP_S:g} s Whisper window; split it first")
            prepared.append(samples)
        texts: list[str] = []
        step = self.runtime.batch_size
        for start in range(0, len(prepared), step):
            sequences = self._generate(self._features(prepared[start:start + step]))
            # skip_special_tokens drops the prompt and end tokens; the tokenizer's decode also drops
            # any timestamp tokens the model predicted.
            decoded = self.processor.batch_decode(sequences.cpu(), skip_special_tokens=True)
            texts.extend(text.strip() for text in decoded)
        return texts
