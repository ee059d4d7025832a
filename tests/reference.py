"""LAION's reference inference, written from the model spec (laion_models.md sections 3.2-3.5, 4.3),
deliberately naive: one nn.Module per head, one call per head, the full SiglipModel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn


class FaceMLP(nn.Module):
    """LAION's face head: Linear, ReLU, Dropout repeated; a final Linear to 1 output."""

    def __init__(self, input_size: int, hidden: list[int], dropout: float = 0.1):
        super().__init__()
        layers: list[nn.Module] = []
        current = input_size
        for size in hidden:
            layers += [nn.Linear(current, size), nn.ReLU(), nn.Dropout(dropout)]
            current = size
        layers.append(nn.Linear(current, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


def voice_mlp(projection_dim: int, hidden: list[int]) -> nn.Sequential:
    """What follows ``proj`` in LAION's voice heads and quality experts: ReLU/Dropout + Linear blocks
    (mlp.2, .5, .8, .11)."""
    layers: list[nn.Module] = [nn.ReLU(), nn.Dropout(0.0)]
    current = projection_dim
    for size in hidden:
        layers += [nn.Linear(current, size), nn.ReLU(), nn.Dropout(0.1)]
        current = size
    layers.append(nn.Linear(current, 1))
    return nn.Sequential(*layers)


class FullEmbeddingMLP(nn.Module):
    """LAION's voice head: flatten, proj, then ReLU/Dropout + Linear blocks (mlp.2, .5, .8, .11)."""

    def __init__(self, seq_len: int, embed_dim: int, projection_dim: int, hidden: list[int]):
        super().__init__()
        self.flatten = nn.Flatten()
        self.proj = nn.Linear(seq_len * embed_dim, projection_dim)
        self.mlp = voice_mlp(projection_dim, hidden)

    def forward(self, x):
        return self.mlp(self.proj(self.flatten(x)))


def load_face_head(path: Path) -> FaceMLP:
    state = torch.load(path, map_location="cpu", weights_only=True)
    weights = [state[k] for k in sorted((k for k in state if k.endswith(".weight")),
                                        key=lambda k: int(k.split(".")[1]))]
    head = FaceMLP(weights[0].shape[1], [w.shape[0] for w in weights[:-1]])
    head.load_state_dict(state, strict=True)
    return head.eval()


def reference_face_scores(rgb: np.ndarray, backbone_dir: Path, heads_dir: Path, neutral_file: str | None,
                          nested: bool) -> dict[str, dict[str, float]]:
    """{file stem: {raw, ms, softmax or None}} for one whole RGB image, as LAION's notebook."""
    from PIL import Image
    from transformers import AutoImageProcessor, SiglipModel

    model = SiglipModel.from_pretrained(backbone_dir).eval()
    # LAION calls AutoProcessor; its image half is this processor (the replica has no tokenizer).
    processor = AutoImageProcessor.from_pretrained(backbone_dir, backend="pil")
    inputs = processor(images=[Image.fromarray(rgb).convert("RGB")], return_tensors="pt")
    with torch.no_grad():
        features = model.get_image_features(pixel_values=inputs["pixel_values"])
        if not isinstance(features, torch.Tensor):
            features = features.pooler_output
        features = features.numpy()
    norm = np.linalg.norm(features, axis=-1, keepdims=True)
    embedding = torch.from_numpy(features / np.where(norm == 0, 1, norm)).float()
    heads = {p.stem: load_face_head(p) for p in sorted(heads_dir.glob("model_*_best.pth"))}
    with torch.no_grad():
        raw = {k: h(embedding).item() for k, h in heads.items()}
    means = {}
    if neutral_file:
        data = json.loads((heads_dir / neutral_file).read_text())
        means = {k: (v["mean"] if nested else v) for k, v in data.items()}
    ms = {k: raw[k] - means.get(k, 0.0) for k in raw}
    extra = ("valence", "arousal", "dominance", "vulnerability")
    emotion_keys = [k for k in ms if not any(w in k.lower() for w in extra)]
    probabilities = torch.softmax(torch.tensor([ms[k] for k in emotion_keys]), dim=0).tolist()
    share = dict(zip(emotion_keys, probabilities))
    return {k: {"raw": raw[k], "ms": ms[k], "softmax": share.get(k)} for k in raw}


def load_voice_head(path: Path) -> FullEmbeddingMLP:
    """As LAION's voice loaders: strip torch.compile's prefix, then a strict load."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k.removeprefix("_orig_mod."): v for k, v in state.items()}
    projection = state["proj.weight"].shape[0]
    hidden = [state[f"mlp.{i}.weight"].shape[0] for i in (2, 5, 8)]
    seq_len_times_dim = state["proj.weight"].shape[1]
    head = FullEmbeddingMLP(1500, seq_len_times_dim // 1500, projection, hidden)
    head.load_state_dict(state, strict=True)
    return head.eval()


def reference_voice_scores(wav: np.ndarray, encoder_dir: Path, heads_dir: Path) -> dict[str, dict]:
    """{file part: {raw, softmax or None}} for one clip, as LAION's voice notebook (spec 4.5)."""
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    whisper = WhisperForConditionalGeneration.from_pretrained(encoder_dir).eval()
    extractor = WhisperFeatureExtractor.from_pretrained(encoder_dir)
    wav = wav[: 30 * 16000]
    features = extractor(wav, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        embedding = whisper.get_encoder()(input_features=features).last_hidden_state
    if embedding.shape[1] < 1500:
        embedding = torch.cat([embedding, torch.zeros(1, 1500 - embedding.shape[1], embedding.shape[2])], 1)
    embedding = embedding[:, :1500]
    raw = {}
    for path in sorted(heads_dir.glob("model_*_best.pth")):
        part = path.name.split("model_")[1].split("_best.pth")[0]
        with torch.no_grad():
            raw[part] = load_voice_head(path)(embedding).item()
    return raw


# Voice-Plus, written from its card (commit 441d220: "mean + min + max + std pooling over the encoder
# sequence dimension, yielding a 3072-d input", "proj=64, hidden=[64, 32, 16]") and LAION's server that
# loads it (Retrieval-Augmented-Voice-Cloning servers/ei_server.py): these four files are the quality
# experts, every other head file reads the full sequence.
VOICE_PLUS_QUALITY_FILES = (
    "model_score_overall_quality_best.pth", "model_score_speech_quality_best.pth",
    "model_score_background_quality_best.pth", "model_score_content_enjoyment_best.pth",
)


class PooledEmbeddingMLP(nn.Module):
    """LAION's quality expert: proj on the pooled vector, then the voice heads' ReLU/Dropout + Linear blocks."""

    def __init__(self, input_dim: int, projection_dim: int, hidden: list[int]):
        super().__init__()
        self.proj = nn.Linear(input_dim, projection_dim)
        self.mlp = voice_mlp(projection_dim, hidden)

    def forward(self, x):
        return self.mlp(self.proj(x))


def pool_embedding(embedding: torch.Tensor) -> torch.Tensor:
    """[B, seq, d] -> [B, 4 d]: mean, min, max, std (torch's default, unbiased) over the sequence."""
    return torch.cat([embedding.mean(dim=1), embedding.min(dim=1).values, embedding.max(dim=1).values,
                      embedding.std(dim=1)], dim=1)


def load_quality_expert(path: Path) -> PooledEmbeddingMLP:
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k.removeprefix("_orig_mod."): v for k, v in state.items()}
    hidden = [state[f"mlp.{i}.weight"].shape[0] for i in (2, 5, 8)]
    head = PooledEmbeddingMLP(state["proj.weight"].shape[1], state["proj.weight"].shape[0], hidden)
    head.load_state_dict(state, strict=True)
    return head.eval()


def reference_voice_plus_scores(wav: np.ndarray, encoder_dir: Path, heads_dir: Path) -> dict[str, float]:
    """{dimension name: raw} for one clip: the 55 full-sequence heads and the 4 quality experts, named
    as LAION's server names them (the file stem without ``model_`` and ``_best``)."""
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    whisper = WhisperForConditionalGeneration.from_pretrained(encoder_dir).eval()
    extractor = WhisperFeatureExtractor.from_pretrained(encoder_dir)
    features = extractor(wav[: 30 * 16000], sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        embedding = whisper.get_encoder()(features, return_dict=True).last_hidden_state  # [1, 1500, d]
        pooled = pool_embedding(embedding)
    scores = {}
    for path in sorted(heads_dir.glob("*.pth")):
        name = "_".join(path.stem.split("_")[1:-1])
        with torch.no_grad():
            if path.name in VOICE_PLUS_QUALITY_FILES:
                scores[name] = load_quality_expert(path)(pooled).item()
            else:
                scores[name] = load_voice_head(path)(embedding).item()
    return scores
