"""Tiny random replicas of the real model repositories, in the real Hugging Face cache layout.

The real repo ids then resolve offline through huggingface_hub and ``from_pretrained``, so the
project's own loading code runs unchanged; only the sizes are small and the weights random.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from collections import OrderedDict
from pathlib import Path

import torch

from empathic.registry import FACE_MODELS, HeadSet, RepoRef
from empathic.taxonomy import file_key_of

TINY_SIGLIP_HIDDEN = 32
# Realistic neutral means (LAION's observed Face-Small values) so intensities are not just raw.
NEUTRAL_MEANS = {
    "affection": 1.272224, "amusement": 0.336076, "anger": 0.638796, "arousal": 2.714186,
    "astonishment_surprise": 0.174614, "awe": 0.023399, "bitterness": 0.267969,
    "concentration": 4.073406, "confusion": 0.478889, "contemplation": 1.928450,
    "contempt": 0.053346, "contentment": 1.662215, "disappointment": 0.761552, "disgust": 0.008892,
    "distress": 1.348355, "dominance": 0.104886, "doubt": 1.227093, "elation": 0.077462,
    "embarrassment": 0.228496, "emotional_numbness": 1.205810, "emotional_vulnerability": 1.815456,
    "fatigue_exhaustion": 1.463654, "fear": 0.098088, "helplessness": 0.267226,
    "hope_enthusiasm_optimism": 1.460467, "impatience_and_irritability": 1.088705,
    "infatuation": 0.700262, "interest": 2.584354,
    "intoxication_altered_states_of_consciousness": 0.004028, "jealousy_&_envy": 0.027274,
    "longing": 0.122691, "malevolence_malice": 0.104506, "pain": 0.007824, "pleasure_ecstasy": 0.073243,
    "pride": 0.460153, "relief": 0.014580, "sadness": 1.234170, "sexual_lust": 0.215245,
    "shame": 0.149040, "sourness": 0.005655, "teasing": 0.070030, "thankfulness_gratitude": 0.103194,
    "triumph": 0.010607, "valence": -0.152978,
}
# Hidden sizes: Small keeps the real 128/32; Large is shrunk (and deeper) to keep the fixture light.
FACE_HIDDEN = {"small": (128, 32), "large": (64, 32, 16)}


def _tensor_bytes(state_dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    return buffer.getvalue()


def face_head_state_dict(input_size: int, hidden: tuple[int, ...], seed: int) -> OrderedDict:
    """Keys layers.0, layers.3, ... as LAION's face MLP (Linear, ReLU, Dropout repeated)."""
    generator = torch.Generator().manual_seed(seed)
    sizes = (input_size, *hidden, 1)
    state = OrderedDict()
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = 1.0 / n_in ** 0.5
        state[f"layers.{3 * i}.weight"] = (torch.rand(n_out, n_in, generator=generator) * 2 - 1) * bound
        # A positive output bias puts raw scores in LAION's typical 0..4 range.
        state[f"layers.{3 * i}.bias"] = (torch.rand(n_out, generator=generator) * 2 - 1) * bound + (
            1.5 if n_out == 1 else 0.0)
    return state


def face_repo_files(spec: HeadSet, input_size: int = TINY_SIGLIP_HIDDEN) -> dict[str, bytes]:
    files = {}
    for seed, name in enumerate(spec.head_file_names()):
        files[name] = _tensor_bytes(face_head_state_dict(input_size, FACE_HIDDEN[spec.size], seed))
    if spec.neutral is not None:
        keys = [file_key_of(n) for n in spec.head_file_names()]
        if spec.neutral.format == "flat":
            neutral = {f"model_{k}_best": NEUTRAL_MEANS[k] for k in keys}
        else:
            neutral = {f"model_{k}_best": {"mean": NEUTRAL_MEANS[k] * 0.9, "std": 0.5} for k in keys}
        files[spec.neutral.file_name] = json.dumps(neutral, indent=4).encode()
    files["README.md"] = b"tiny random replica for tests\n"
    return files


def tiny_siglip_files(hidden: int = TINY_SIGLIP_HIDDEN) -> dict[str, bytes]:
    """A SigLIP with the real 384 px / patch 16 geometry and a tiny width, plus its processor."""
    from transformers import SiglipConfig, SiglipModel
    from transformers.models.siglip import SiglipImageProcessorPil
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # SigLIP's default text config warns about its token ids
    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    config = SiglipConfig(
        vision_config=dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                           num_attention_heads=4, image_size=384, patch_size=16),
        text_config=dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
                         num_attention_heads=4, vocab_size=64, max_position_embeddings=16,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0))
    processor = SiglipImageProcessorPil(size={"height": 384, "width": 384}, image_mean=[0.5] * 3,
                                        image_std=[0.5] * 3, resample=2)
    with tempfile.TemporaryDirectory() as folder:
        SiglipModel(config).eval().save_pretrained(folder)
        processor.save_pretrained(folder)
        return {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}


def write_hub_repo(cache: Path, ref: RepoRef, files: dict[str, bytes]) -> Path:
    """models--ORG--NAME/{blobs,refs,snapshots} exactly as huggingface_hub lays them out."""
    root = Path(cache) / ("models--" + ref.repo_id.replace("/", "--"))
    digest = hashlib.sha1()
    for name in sorted(files):
        digest.update(name.encode() + hashlib.sha256(files[name]).digest())
    is_hash = re.fullmatch(r"[0-9a-f]{40}", ref.revision) is not None
    commit = ref.revision if is_hash else digest.hexdigest()
    snapshot = root / "snapshots" / commit
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        blob = root / "blobs" / hashlib.sha256(content).hexdigest()
        blob.write_bytes(content)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    if not is_hash:
        ref_file = root / "refs" / ref.revision  # "refs/pr/3" nests, as huggingface_hub writes it
        ref_file.parent.mkdir(parents=True, exist_ok=True)
        ref_file.write_text(commit)
    return snapshot


def build_face_replicas(cache: Path) -> dict[str, Path]:
    """Both face sizes and the SigLIP backbone; returns the snapshot folder of each repo id."""
    snapshots = {}
    backbone = FACE_MODELS["small"].backbone
    snapshots[backbone.repo_id] = write_hub_repo(cache, backbone, tiny_siglip_files())
    for spec in FACE_MODELS.values():
        snapshots[spec.repo.repo_id] = write_hub_repo(cache, spec.repo, face_repo_files(spec))
    return snapshots


# Voice: a Whisper with the real 80 mel bins and 1500 encoder positions but a tiny width, so the
# heads' first layer takes 1500 x 16 inputs (the real ones take 1500 x 768).
TINY_WHISPER_D_MODEL = 16
WHISPER_POSITIONS = 1500
# projection and hidden sizes keep the real pattern (Small 64/[64,32,16], Large 128/[128,64,32]) shrunk;
# Voice-Plus re-hosts Voice-Small's heads, and its quality experts have the same shape on pooled input.
VOICE_HIDDEN = {"small": (8, 8, 4, 2), "large": (16, 16, 8, 4), "plus": (8, 8, 4, 2)}
POOLED_BLOCKS = 4  # mean, min, max, std: the quality experts read 4 x d_model inputs


def tiny_whisper_files(d_model: int = TINY_WHISPER_D_MODEL, seed: int = 0) -> dict[str, bytes]:
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    torch.manual_seed(seed)
    config = WhisperConfig(
        num_mel_bins=80, d_model=d_model, encoder_layers=2, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model, max_source_positions=WHISPER_POSITIONS, max_target_positions=32,
        vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=3)
    with tempfile.TemporaryDirectory() as folder:
        WhisperForConditionalGeneration(config).eval().save_pretrained(folder)
        WhisperFeatureExtractor(feature_size=80, sampling_rate=16000).save_pretrained(folder)
        return {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}


def voice_head_state_dict(input_size: int, sizes: tuple[int, ...], seed: int,
                          compiled: bool = False) -> OrderedDict:
    """Keys proj, mlp.2, mlp.5, ... as LAION's FullEmbeddingMLP; optionally torch.compile's prefix."""
    generator = torch.Generator().manual_seed(1000 + seed)
    names = ["proj"] + [f"mlp.{2 + 3 * i}" for i in range(len(sizes))]
    dims = (input_size, *sizes, 1)
    state = OrderedDict()
    prefix = "_orig_mod." if compiled else ""
    for name, n_in, n_out in zip(names, dims[:-1], dims[1:]):
        # A large gain on proj: most of the 1500 positions are the 30 s window's padding, and
        # without it different audio would give nearly the same scores.
        bound = (40.0 if name == "proj" else 1.0) / n_in ** 0.5
        state[f"{prefix}{name}.weight"] = (torch.rand(n_out, n_in, generator=generator) * 2 - 1) * bound
        state[f"{prefix}{name}.bias"] = (torch.rand(n_out, generator=generator) * 2 - 1) * bound + (
            1.0 if n_out == 1 else 0.0)
    return state


def quality_expert_state_dict(input_size: int, sizes: tuple[int, ...], seed: int) -> OrderedDict:
    """A Voice-Plus quality expert (LAION's PooledEmbeddingMLP): the keys of a voice head, proj
    reading pooled features. Outputs around 3, as LAION's MOS-like experts."""
    generator = torch.Generator().manual_seed(5000 + seed)
    names = ["proj"] + [f"mlp.{2 + 3 * i}" for i in range(len(sizes))]
    dims = (input_size, *sizes, 1)
    state = OrderedDict()
    for name, n_in, n_out in zip(names, dims[:-1], dims[1:]):
        # A large gain on proj: the tiny encoder's pooled statistics differ little from clip to clip.
        bound = (30.0 if name == "proj" else 1.0) / n_in ** 0.5
        state[f"{name}.weight"] = (torch.rand(n_out, n_in, generator=generator) * 2 - 1) * bound
        state[f"{name}.bias"] = (torch.rand(n_out, generator=generator) * 2 - 1) * bound + (3.0 if n_out == 1 else 0.0)
    return state


def voice_repo_files(spec: HeadSet, d_model: int = TINY_WHISPER_D_MODEL) -> dict[str, bytes]:
    files = {}
    for seed, name in enumerate(spec.head_file_names()):
        state = voice_head_state_dict(WHISPER_POSITIONS * d_model, VOICE_HIDDEN[spec.size], seed,
                                      compiled=seed % 3 == 1)
        files[name] = _tensor_bytes(state)
    for seed, name in enumerate(spec.quality_file_names()):
        files[name] = _tensor_bytes(quality_expert_state_dict(POOLED_BLOCKS * d_model, VOICE_HIDDEN[spec.size], seed))
    files["README.md"] = b"tiny random replica for tests\n"
    return files


def build_voice_replicas(cache: Path) -> dict[str, Path]:
    """Every voice model (Voice-Plus at its pinned commit) and both Whisper encoders (different
    random weights)."""
    from empathic.registry import VOICE_ENCODERS, VOICE_MODELS

    snapshots = {}
    for seed, ref in enumerate(VOICE_ENCODERS.values()):
        snapshots[ref.repo_id] = write_hub_repo(cache, ref, tiny_whisper_files(seed=seed))
    for spec in VOICE_MODELS.values():
        snapshots[spec.repo.repo_id] = write_hub_repo(cache, spec.repo, voice_repo_files(spec))
    return snapshots
