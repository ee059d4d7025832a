"""Face emotion model: SigLIP image embedding, then LAION's fused face heads and scoring."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..hub import ModelNeed, ResolvedRepo, WeightSources, head_need, resolve_needs
from ..registry import BACKBONE_PATTERNS, HeadSet, NeutralStats, RevisionChoices, face_model
from ..results import EmotionScore, ModelInfo
from ..scoring import score_rows
from ..taxonomy import file_key_of
from .heads import FusedHeads
from .quiet import quiet_transformers
from .runtime import Runtime

log = logging.getLogger(__name__)


class NeutralStatsError(ValueError):
    """The neutral-statistics JSON cannot be read."""


# What a transformers backbone or encoder folder must hold besides its weights.
BACKBONE_REQUIRED_FILES = ("config.json", "preprocessor_config.json")


def load_neutral_means(path: Path, stats: NeutralStats, head_files: tuple[str, ...]) -> np.ndarray | None:
    """Per-head neutral means in head order, or None where the file does not cover every head.

    LAION's notebooks use the file only if it covers all loaded heads, and otherwise fall back to
    a mean of 0 (intensity = raw); the same rule applies here, with a warning.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NeutralStatsError(f"{path.name}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise NeutralStatsError(f"{path.name}: expected a JSON object of per-head means")
    means = []
    for file_name in head_files:
        key = f"model_{file_key_of(file_name)}_best"
        value = data.get(key)
        if stats.format == "nested":
            value = value.get("mean") if isinstance(value, dict) and "std" in value else None
        if not isinstance(value, (int, float)):
            log.warning("%s has no usable neutral mean for %s; using 0 for every head, as LAION does",
                        path.name, key)
            return None
        means.append(float(value))
    return np.asarray(means, dtype=np.float64)


class SiglipEmbedder:
    """L2-normalised SigLIP image features (the vision tower's pooled output), as LAION computes them."""

    def __init__(self, backbone_dir: Path, runtime: Runtime):
        from transformers import AutoImageProcessor, SiglipVisionModel

        # The PIL processor is what LAION's notebooks ran; the torchvision one resizes differently.
        self.processor = AutoImageProcessor.from_pretrained(backbone_dir, backend="pil")
        with quiet_transformers():  # the text tower's weights are unused here, by design
            self.model = SiglipVisionModel.from_pretrained(backbone_dir, dtype=runtime.dtype)
        self.model.to(runtime.device).eval()
        self.runtime = runtime
        self.embedding_size = int(self.model.config.hidden_size)

    def preprocess(self, rgb_images: list[np.ndarray]) -> torch.Tensor:
        return self.processor(images=rgb_images, return_tensors="pt")["pixel_values"]

    @torch.inference_mode()
    def embed(self, pixel_values: torch.Tensor) -> np.ndarray:
        pixels = pixel_values.to(self.runtime.device, self.runtime.dtype, non_blocking=True)
        pooled = self.model(pixel_values=pixels).pooler_output.float()
        # LAION divides by the norm, and by 1 where the norm is 0.
        norms = pooled.norm(dim=-1, keepdim=True)
        pooled = pooled / torch.where(norms > 0, norms, torch.ones_like(norms))
        return pooled.cpu().numpy()


@dataclass(frozen=True)
class LoadedFiles:
    heads: ResolvedRepo
    backbone: ResolvedRepo


class FaceEmotionModel:
    """Embeds face crops and scores them with every head of one Empathic Insight face model."""

    def __init__(self, spec: HeadSet, files: LoadedFiles, runtime: Runtime):
        self.spec = spec
        self.runtime = runtime
        head_files = spec.head_file_names()
        self.embedder = SiglipEmbedder(files.backbone.path, runtime)
        # Heads stay in fp32 on every device: they are small and sit right at the output.
        self.heads = FusedHeads.from_files([files.heads.path / f for f in head_files]).to(runtime.device)
        if self.heads.input_size != self.embedder.embedding_size:
            raise ValueError(f"{spec.repo.repo_id} heads take {self.heads.input_size}-d embeddings but "
                             f"{spec.backbone.repo_id} gives {self.embedder.embedding_size}-d")
        self.neutral = None
        if spec.neutral is not None:
            self.neutral = load_neutral_means(files.heads.path / spec.neutral.file_name, spec.neutral,
                                              head_files)
        self.dimension_ids = tuple(d.id for d in spec.dimensions)
        self.info = self.describe(spec, files, runtime)

    @staticmethod
    def describe(spec: HeadSet, files: LoadedFiles, runtime: Runtime) -> ModelInfo:
        """What a loaded model will record, known without loading it (cache keys need it)."""
        return ModelInfo(
            modality="face", model_size=spec.size, repo=spec.repo.repo_id, revision=files.heads.commit,
            requested_revision=files.heads.ref.revision, backbone_repo=files.backbone.ref.repo_id,
            backbone_revision=files.backbone.commit, precision=runtime.precision_name)

    @staticmethod
    def needs(size: str, revisions: RevisionChoices = RevisionChoices()) -> tuple[ModelNeed, ...]:
        """The repositories a face model of this size loads: its heads and the SigLIP backbone, at
        the registry's revisions or those chosen in ``revisions``."""
        registry_spec = face_model(size)
        spec = revisions.apply_heads(registry_spec)
        fetch = ("--face", size)
        return (head_need(spec, registry_spec.revisions(), fetch),
                ModelNeed(revisions.apply(spec.backbone), BACKBONE_PATTERNS, BACKBONE_REQUIRED_FILES, fetch))

    @staticmethod
    def locate(size: str, sources: WeightSources, revisions: RevisionChoices = RevisionChoices()
               ) -> tuple[HeadSet, LoadedFiles]:
        """The weights' folders and commits, or MissingWeightsError naming what to fetch."""
        heads, backbone = FaceEmotionModel.needs(size, revisions)
        repos = resolve_needs((heads, backbone), sources)
        return face_model(size), LoadedFiles(repos[heads.ref], repos[backbone.ref])

    @classmethod
    def load(cls, size: str, sources: WeightSources, runtime: Runtime,
             revisions: RevisionChoices = RevisionChoices()) -> "FaceEmotionModel":
        return cls(*cls.locate(size, sources, revisions), runtime)

    def preprocess(self, rgb_images: list[np.ndarray]) -> torch.Tensor:
        return self.embedder.preprocess(rgb_images)

    def embed(self, pixel_values: torch.Tensor) -> np.ndarray:
        return self.embedder.embed(pixel_values)

    def raw_scores(self, embeddings: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32)).to(self.runtime.device)
        return self.heads(tensor).cpu().numpy()

    def score(self, embeddings: np.ndarray
              ) -> list[tuple[tuple[EmotionScore, ...], tuple[tuple[str, float], ...]]]:
        return score_rows(self.raw_scores(embeddings), self.neutral, self.dimension_ids)
