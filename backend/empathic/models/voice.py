"""Voice emotion model: Whisper encoder states of a 30 s window, then LAION's fused voice heads.

As the spec and LAION's code: 16 kHz mono audio -> Whisper log-mel features padded (with zeros)
to 30 s -> encoder ``last_hidden_state`` [B, 1500, d_model], not pooled, flattened -> each head's
``proj`` + MLP. The padding is part of what the heads were trained on, so it is never dropped.

Voice-Plus adds four audio-quality experts that read POOLED states instead: mean, min, max and
standard deviation (torch's default, unbiased) over the 1500 positions, concatenated in that order
into 4 x d_model inputs, as LAION's server does (LAION-AI/Retrieval-Augmented-Voice-Cloning,
servers/ei_server.py, ``pool_embedding``). Their values come out beside the attributes and never
enter the emotion softmax.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..audio import SAMPLE_RATE
from ..hub import ModelNeed, ResolvedRepo, WeightSources, head_need, resolve_needs
from ..registry import BACKBONE_PATTERNS, VOICE_ENCODERS, HeadSet, RepoRef, RevisionChoices, voice_model
from ..results import EmotionScore, ModelInfo
from ..scoring import NUM_EMOTIONS, score_rows
from .face import BACKBONE_REQUIRED_FILES
from .head_stack import load_stacked_heads
from .heads import FusedHeads
from .quiet import quiet_transformers
from .runtime import PRECISIONS, Runtime

WINDOW_S = 30.0  # one Whisper input window
SEGMENTS_PER_HEAD_PASS = 64  # segments sharing one read of the head weights (see raw_scores)
DEFAULT_ENCODER = "auto"  # each model's own encoder (registry: HeadSet.backbone)
POOLING = ("mean", "min", "max", "std")  # the quality experts' input blocks, in this order
# Some Whisper fine-tunes publish only PyTorch pickles; transformers prefers safetensors if both.
ENCODER_PATTERNS = BACKBONE_PATTERNS + ("pytorch_model.bin",)
HEAD_PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")


def head_format(head_precision: str, runtime: Runtime) -> tuple[torch.dtype, str, str]:
    """(the heads' dtype, their first layer's format, the name outputs record) for --head-precision.
    auto follows the runtime's precision; int8 keeps the first layers in int8 (a quarter of the
    fp32 memory) and the rest in the runtime's precision."""
    if head_precision not in HEAD_PRECISIONS:
        raise ValueError(f"unknown head precision {head_precision!r}: use {', '.join(HEAD_PRECISIONS)}")
    if head_precision == "auto":
        return runtime.dtype, "dense", runtime.precision_name
    if head_precision == "int8":
        return runtime.dtype, "int8", "int8"
    return PRECISIONS[head_precision], "dense", head_precision


def attribute_selection(text: str) -> tuple[str, ...] | None:
    """A user's choice of attribute heads: ``all`` -> None (every one), ``none`` -> (), else the
    comma-separated ids."""
    wanted = text.strip()
    if wanted.lower() == "all":
        return None
    if wanted.lower() == "none":
        return ()
    return tuple(item.strip() for item in wanted.split(",") if item.strip())


def with_attributes(spec: HeadSet, attributes: tuple[str, ...] | None) -> HeadSet:
    """The head set with only these attribute heads (None: all of them), in the model's order."""
    if attributes is None:
        return spec
    known = {d.id for d in spec.dimensions}
    unknown = sorted(set(attributes) - known)
    if unknown:
        raise ValueError(f"{spec.repo.repo_id} has no attribute head {', '.join(unknown)}; it has "
                         f"{', '.join(d.id for d in spec.dimensions)}")
    return replace(spec, dimensions=tuple(d for d in spec.dimensions if d.id in set(attributes)))


def recorded_precision(runtime: Runtime, head_precision: str) -> str:
    """``bf16``, or ``bf16, heads int8`` where the heads differ from the encoder."""
    heads = head_format(head_precision, runtime)[2]
    return runtime.precision_name if heads == runtime.precision_name else f"{runtime.precision_name}, heads {heads}"


def voice_encoder(name: str, spec: HeadSet | None = None) -> RepoRef:
    """The encoder ``name`` stands for; ``auto`` is the model's own (EmoWhisper under Voice-Small and
    -Large, as LAION's code runs them; BUD-E-Whisper under Voice-Plus, as its card says)."""
    if name == DEFAULT_ENCODER:
        return (spec or voice_model("small")).backbone
    try:
        return VOICE_ENCODERS[name]
    except KeyError:
        raise ValueError(f"unknown voice encoder {name!r}; choose one of "
                         f"{', '.join([DEFAULT_ENCODER, *sorted(VOICE_ENCODERS)])}") from None


def pooled_features(states: torch.Tensor) -> torch.Tensor:
    """[B, positions, d] -> [B, 4 d]: mean, min, max, unbiased std over the positions, in float32
    (LAION's guide pools ``emb.float()``; bf16 would round the statistics of 1500 values)."""
    states = states.float()
    return torch.cat([states.mean(dim=1), states.amin(dim=1), states.amax(dim=1), states.std(dim=1)], dim=1)


class WhisperEmbedder:
    """Unpooled Whisper encoder states of 30 s windows, computed as LAION computes them."""

    def __init__(self, encoder_dir: Path, runtime: Runtime):
        from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

        self.feature_extractor = WhisperFeatureExtractor.from_pretrained(encoder_dir)
        if self.feature_extractor.sampling_rate != SAMPLE_RATE:
            raise ValueError(f"{encoder_dir}: the feature extractor expects "
                             f"{self.feature_extractor.sampling_rate} Hz, not {SAMPLE_RATE}")
        with quiet_transformers():
            # Loaded whole as LAION does (any checkpoint layout works); only the encoder is kept.
            full = WhisperForConditionalGeneration.from_pretrained(encoder_dir, dtype=runtime.dtype)
        self.encoder = full.get_encoder().to(runtime.device).eval()
        del full
        self.runtime = runtime
        self.positions = int(self.encoder.config.max_source_positions)
        self.d_model = int(self.encoder.config.d_model)

    def features(self, clips: list[np.ndarray]) -> torch.Tensor:
        """[B, n_mels, 3000] log-mel features, each clip zero-padded to 30 s."""
        for clip in clips:
            if len(clip) > WINDOW_S * SAMPLE_RATE:
                raise ValueError(f"a voice clip of {len(clip) / SAMPLE_RATE:.2f} s exceeds the "
                                 f"{WINDOW_S:g} s Whisper window; split it first")
        return self.feature_extractor(clips, sampling_rate=SAMPLE_RATE, return_tensors="pt",
                                      padding="max_length", truncation=True)["input_features"]

    @torch.inference_mode()
    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """[B, 1500, d_model] encoder states, left on the model's device for the heads."""
        inputs = features.to(self.runtime.device, self.runtime.dtype, non_blocking=True)
        return self.encoder(input_features=inputs).last_hidden_state


@dataclass(frozen=True)
class LoadedFiles:
    heads: ResolvedRepo
    encoder: ResolvedRepo


class VoiceEmotionModel:
    """Scores voice clips (<= 30 s each) with every head of one Empathic Insight voice model."""

    def __init__(self, spec: HeadSet, encoder_ref: RepoRef, files: LoadedFiles, runtime: Runtime,
                 head_precision: str = "auto", attributes: tuple[str, ...] | None = None,
                 head_cache: Path | None = None):
        """``attributes``: the attribute heads to load (None: all; the 40 emotion heads always
        load, shares are a softmax over all of them). ``head_cache``: where the stacked copy of
        the heads is kept (``head_stack``; None: none)."""
        spec = with_attributes(spec, attributes)
        self.spec = spec
        self.runtime = runtime
        self.embedder = WhisperEmbedder(files.encoder.path, runtime)
        # The heads take the runtime's precision (bf16 halves 16/32 GB of weights, int8 first
        # layers quarter them) and are stacked straight onto the device, one file at a time.
        dtype, first_layer, _ = head_format(head_precision, runtime)
        self.heads = load_stacked_heads([files.heads.path / f for f in spec.head_file_names()], dtype,
                                        runtime.device, first_layer, head_cache)
        expected = self.embedder.positions * self.embedder.d_model
        if self.heads.input_size != expected:
            raise ValueError(
                f"{spec.repo.repo_id} heads take {self.heads.input_size} inputs but {encoder_ref.repo_id} "
                f"gives {self.embedder.positions} x {self.embedder.d_model} = {expected}")
        # The quality experts are tiny (about 200 K parameters each): fp32 on every device.
        self.quality_heads = None
        if spec.quality:
            self.quality_heads = FusedHeads.from_files(
                [files.heads.path / f for f in spec.quality_file_names()], device=runtime.device)
            pooled = len(POOLING) * self.embedder.d_model
            if self.quality_heads.input_size != pooled:
                raise ValueError(
                    f"{spec.repo.repo_id} quality experts take {self.quality_heads.input_size} inputs but "
                    f"{encoder_ref.repo_id}'s pooled states have {len(POOLING)} x {self.embedder.d_model} = {pooled}")
        self.attribute_ids = tuple(d.id for d in spec.dimensions)
        self.quality_ids = tuple(q.id for q in spec.quality)
        self.info = self.describe(spec, encoder_ref, files, runtime, head_precision)

    @staticmethod
    def describe(spec: HeadSet, encoder_ref: RepoRef, files: LoadedFiles, runtime: Runtime,
                 head_precision: str = "auto") -> ModelInfo:
        """What a loaded model will record, known without loading it (cache keys need it)."""
        return ModelInfo(
            modality="voice", model_size=spec.size, repo=spec.repo.repo_id, revision=files.heads.commit,
            requested_revision=files.heads.ref.revision, backbone_repo=files.encoder.ref.repo_id,
            backbone_revision=files.encoder.commit, precision=recorded_precision(runtime, head_precision))

    @classmethod
    def load(cls, size: str, sources: WeightSources, runtime: Runtime, encoder: str = DEFAULT_ENCODER,
             head_precision: str = "auto", attributes: tuple[str, ...] | None = None,
             head_cache: Path | None = None, revisions: RevisionChoices = RevisionChoices()
             ) -> "VoiceEmotionModel":
        head_format(head_precision, runtime)  # an unknown name fails before anything is read
        with_attributes(voice_model(size), attributes)
        return cls(*cls.locate(size, sources, encoder, revisions), runtime, head_precision, attributes, head_cache)

    @staticmethod
    def needs(size: str, encoder: str = DEFAULT_ENCODER, revisions: RevisionChoices = RevisionChoices()
              ) -> tuple[ModelNeed, ...]:
        """The repositories a voice model loads: its heads and its Whisper encoder, at the
        registry's revisions (Voice-Large: the first that holds the heads) or those in ``revisions``."""
        registry_spec = voice_model(size)
        spec = revisions.apply_heads(registry_spec)
        fetch = ("--voice", size) + (() if encoder == DEFAULT_ENCODER else ("--voice-encoder", encoder))
        return (head_need(spec, registry_spec.revisions(), fetch),
                ModelNeed(revisions.apply(voice_encoder(encoder, spec)), ENCODER_PATTERNS, BACKBONE_REQUIRED_FILES,
                          fetch))

    @staticmethod
    def locate(size: str, sources: WeightSources, encoder: str = DEFAULT_ENCODER,
               revisions: RevisionChoices = RevisionChoices()) -> tuple[HeadSet, RepoRef, LoadedFiles]:
        """The weights' folders and commits, or MissingWeightsError naming what to fetch."""
        heads, encoder_need = VoiceEmotionModel.needs(size, encoder, revisions)
        repos = resolve_needs((heads, encoder_need), sources)
        return voice_model(size), encoder_need.ref, LoadedFiles(repos[heads.ref], repos[encoder_need.ref])

    def raw_scores(self, clips: list[np.ndarray],
                   on_encoded: Callable[[int], None] | None = None) -> np.ndarray:
        """[B, 40 + attributes + quality experts] raw head outputs for a group of clips.

        The encoder runs on chunks of the runtime's batch size; the heads run once over the whole
        group. The heads are memory-bound (16 GB of weights read per pass on CPU), so one pass over
        64 segments costs little more than over 8 (measured 4.6x less per segment on CPU).
        ``on_encoded(n)`` is called after each encoder chunk of n clips.
        """
        step = self.runtime.batch_size
        states, pooled = [], []
        for first in range(0, len(clips), step):
            chunk = clips[first:first + step]
            chunk_states = self.embedder.embed(self.embedder.features(chunk))
            states.append(chunk_states)
            if self.quality_heads is not None:
                pooled.append(pooled_features(chunk_states))
            if on_encoded is not None:
                on_encoded(len(chunk))
        raw = self.heads(torch.cat(states)).cpu().numpy()
        if self.quality_heads is None:
            return raw
        quality = self.quality_heads(torch.cat(pooled)).cpu().numpy()
        return np.concatenate([raw, quality], axis=1)

    def score(self, raw: np.ndarray) -> list[tuple[tuple[EmotionScore, ...], tuple[tuple[str, float], ...]]]:
        """Per row: the 40 emotions (best first) and the attributes; quality columns are left to
        ``audio_quality`` and never enter the softmax."""
        # No neutral statistics exist for voice: intensity equals raw.
        return score_rows(np.asarray(raw)[:, :NUM_EMOTIONS + len(self.attribute_ids)], None, self.attribute_ids)

    def audio_quality(self, raw: np.ndarray) -> list[tuple[tuple[str, float], ...]]:
        """Per row: the quality experts' raw values by id (empty for models without them)."""
        columns = np.asarray(raw, dtype=np.float64)[:, NUM_EMOTIONS + len(self.attribute_ids):]
        if columns.shape[1] != len(self.quality_ids):
            raise ValueError(f"expected {len(self.quality_ids)} quality columns, got {columns.shape[1]}")
        return [tuple((q, float(v)) for q, v in zip(self.quality_ids, row)) for row in columns]
