"""Where and in which precision the models run."""

from __future__ import annotations

from dataclasses import dataclass

import torch

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype
    batch_size: int

    @property
    def precision_name(self) -> str:
        return next(name for name, dtype in PRECISIONS.items() if dtype == self.dtype)


def make_runtime(device: str = "auto", precision: str = "auto", batch_size: int | None = None) -> Runtime:
    """auto device: CUDA when present. auto precision: bf16 on CUDA (tensor cores), fp32 on CPU:
    the reference's own precision, and with PyPI's CUDA build of torch bf16 matrix products on a
    CPU are slower, not faster (measured 0.16x for the SigLIP tower, see bench/bench_siglip.py)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA GPU")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")
    torch_device = torch.device(device)
    if precision == "auto":
        precision = "bf16" if torch_device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use auto, {', '.join(PRECISIONS)}")
    if batch_size is None:
        # A GPU needs large batches to be busy; on a CPU batching faces does not help.
        batch_size = 64 if torch_device.type == "cuda" else 8
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    return Runtime(torch_device, PRECISIONS[precision], batch_size)
