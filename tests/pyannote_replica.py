"""A tiny random pyannote speaker-diarization pipeline in the layout of the real hub repository.

``pyannote/speaker-diarization-community-1`` holds a ``config.yaml`` whose ``$model/<subfolder>``
entries pyannote 4 expands to ``{"checkpoint": <the folder>, "subfolder": <subfolder>}``, so a local
copy loads with no hub access:

    config.yaml
    segmentation/pytorch_model.bin   PyanNet, powerset over 3 speakers (at most 2 at once), 10 s chunks
    embedding/pytorch_model.bin      WeSpeakerResNet34
    plda/xvec_transform.npz          mean1 [dim], mean2 [lda], lda [dim, lda]
    plda/plda.npz                    mu [lda], tr [lda, lda], psi [lda]

The checkpoints are what Lightning writes and ``Model.from_pretrained`` reads: ``state_dict``,
``hyper_parameters`` (the constructor arguments, so the shrunk sizes come back), the
``pytorch-lightning_version`` that Lightning's checkpoint migration looks up, and the
``pyannote.audio`` block (versions, class, specifications) that ``on_save_checkpoint`` adds.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")  # before pyannote is imported

import numpy as np  # noqa: E402
import torch  # noqa: E402

# Most random segmentation models give one powerset class to every frame. This seed, with the
# classifier bias zeroed, leaves some frames empty and has two speakers each alone for more than the
# 20 % of a chunk that pyannote's clustering needs, so the tests' track goes through VBx clustering
# with two embeddings instead of its one-speaker shortcut.
SEED = 327
EMBEDDING_MEL_BINS = 16  # ResNet34's widths are fixed; fewer mel bins is the one size it takes
LDA_DIMENSION = 128  # pyannote's PLDA keeps the first 128 dimensions, as the real one has

CONFIG_YAML = """\
pipeline:
  name: pyannote.audio.pipelines.SpeakerDiarization
  params:
    clustering: VBxClustering
    embedding: $model/embedding
    embedding_batch_size: 4
    embedding_exclude_overlap: true
    plda: $model/plda
    segmentation: $model/segmentation
    segmentation_batch_size: 4
params:
  clustering:
    threshold: 0.6
    Fa: 0.07
    Fb: 0.8
  segmentation:
    min_duration_off: 0.0
"""


def _save_checkpoint(model, path: Path) -> None:
    import lightning

    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)


def _segmentation_model():
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.segmentation import PyanNet

    model = PyanNet(
        lstm={"hidden_size": 16, "num_layers": 1, "bidirectional": True},
        linear={"hidden_size": 16, "num_layers": 1},
    )
    model.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION,
        resolution=Resolution.FRAME,
        duration=10.0,
        warm_up=(0.0, 0.0),
        classes=["speaker#1", "speaker#2", "speaker#3"],
        powerset_max_classes=2,
        permutation_invariant=True,
    )
    model.build()  # the task-dependent classifier, which loading rebuilds from the specifications
    with torch.no_grad():
        model.classifier.bias.zero_()  # else a random bias picks the same class for every frame
    return model


def _embedding_model():
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import WeSpeakerResNet34

    model = WeSpeakerResNet34(num_mel_bins=EMBEDDING_MEL_BINS)
    model.specifications = Specifications(
        problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=5.0,
    )
    return model


def _orthonormal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q


def _write_plda(folder: Path, dimension: int, rng: np.random.Generator) -> None:
    # Orthonormal projections and positive variances keep the within- and between-class matrices
    # that pyannote's vbx_setup inverts well conditioned.
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "xvec_transform.npz",
             mean1=rng.standard_normal(dimension) * 0.01,
             mean2=rng.standard_normal(LDA_DIMENSION) * 0.01,
             lda=_orthonormal(rng, dimension, LDA_DIMENSION))
    np.savez(folder / "plda.npz",
             mu=rng.standard_normal(LDA_DIMENSION) * 0.01,
             tr=_orthonormal(rng, LDA_DIMENSION, LDA_DIMENSION),
             psi=np.sort(rng.uniform(0.5, 5.0, LDA_DIMENSION))[::-1].copy())


def build_tiny_pipeline(folder: Path) -> Path:
    """Write the tiny pipeline into ``folder`` (created) and return it; same files for the same seed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    _save_checkpoint(_segmentation_model(), folder / "segmentation" / "pytorch_model.bin")
    embedding = _embedding_model()
    _save_checkpoint(embedding, folder / "embedding" / "pytorch_model.bin")
    _write_plda(folder / "plda", embedding.dimension, rng)
    (folder / "config.yaml").write_text(CONFIG_YAML)
    return folder
