"""Where and in which precision the models run."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype
    batch_size: int

    @property
    def precision_name(self) -> str:
        return next(name for name, dtype in PRECISIONS.items() if dtype == self.dtype)


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512_BF16 or AMX): oneDNN says so, and PyTorch
    dispatches to AVX512 code. Elsewhere bf16 is emulated and slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()
                    and torch.backends.cpu.get_cpu_capability() in ("AVX512", "AVX512_BF16", "AMX"))
    except (AttributeError, RuntimeError):
        return False


def auto_precision(device: torch.device) -> tuple[str, str]:
    """(precision, why) for --precision auto. A CPU stays in fp32 even where it computes bf16
    natively: there bf16 runs about 2x faster, but moves raw scores by up to 1e-3 (faces) and 3e-2
    (voice) from LAION's fp32 (bench/bench_precision.py), past the 1e-4 the faithfulness tests allow;
    ``--precision bf16`` chooses the speed."""
    if device.type == "cuda":
        return "bf16", "GPU (tensor cores)"
    if native_bf16():
        return "fp32", "LAION's precision; this CPU computes bf16 natively: --precision bf16 runs about 2x faster"
    return "fp32", "LAION's precision (this CPU has no native bf16: bf16 would be slower)"


def make_runtime(device: str = "auto", precision: str = "auto", batch_size: int | None = None) -> Runtime:
    """auto device: CUDA when present. auto precision: bf16 on a GPU, fp32 on a CPU (see
    ``auto_precision``; the figures behind it are in bench/bench_precision.py and the README)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA GPU")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")
    torch_device = torch.device(device)
    if precision == "auto":
        precision, why = auto_precision(torch_device)
        log.info("precision auto: %s on %s (%s)", precision, torch_device, why)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use auto, {', '.join(PRECISIONS)}")
    if batch_size is None:
        # A GPU needs large batches to be busy; on a CPU batching faces does not help.
        batch_size = 64 if torch_device.type == "cuda" else 8
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    return Runtime(torch_device, PRECISIONS[precision], batch_size)
