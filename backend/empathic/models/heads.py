"""All of LAION's regression heads of one model as ONE batched computation.

Every Empathic Insight head is a plain MLP: Linear layers with a ReLU between consecutive layers
and nothing after the last one (Dropout is inactive at inference). Face heads name their layers
``layers.0, layers.3, ...``; voice heads ``proj`` followed by ``mlp.2, mlp.5, ...``. Layer sizes
are read from the tensors, so the real checkpoints and tiny test replicas share one code path.

Fusing: the first layers of all H heads are concatenated into one [H*h1, D] matrix, so a batch of
embeddings reads the (large) first-layer weights once; the remaining layers run as batched matrix
products over stacked [H, in, out] weights.

int8 (``first_layer="int8"``): the first layer, 99.9 % of a voice head's weights, is kept as int8
with one scale per output row (absmax / 127, computed as each head is stacked), a quarter of its
fp32 memory. The later layers keep the runtime's precision. Products run on the int8 weights where
PyTorch has a weight-only int8 kernel for the activations' precision (CPU, bf16 activations),
else on slices of the matrix turned back into floats one at a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

COMPILED_PREFIX = "_orig_mod."  # left in state-dict keys by torch.compile
_LAYER_NAME = re.compile(r"^(?:proj|layers\.(\d+)|mlp\.(\d+))$")
FIRST_LAYER_FORMATS = ("dense", "int8")
DEQUANTISED_ROWS = 64  # int8 rows turned back into floats at a time (64 x 1,152,000: 295 MB in fp32)


class HeadFormatError(ValueError):
    """A head checkpoint does not have the shape of an Empathic Insight MLP head."""


def _layer_order(name: str) -> tuple[int, int]:
    match = _LAYER_NAME.match(name)
    if match is None:
        raise HeadFormatError(f"unexpected layer {name!r}")
    if name == "proj":
        return (0, 0)
    return (1, int(match.group(1) or match.group(2)))


def parse_mlp_state_dict(state_dict: Mapping[str, torch.Tensor],
                         source: str = "head") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Ordered (weight [out, in], bias [out]) pairs of an MLP head; strict about keys and shapes."""
    if not isinstance(state_dict, Mapping) or not state_dict:
        raise HeadFormatError(f"{source}: not a state dict")
    tensors = {k.removeprefix(COMPILED_PREFIX): v for k, v in state_dict.items()}
    layers: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        name, _, kind = key.rpartition(".")
        if kind not in ("weight", "bias") or not isinstance(value, torch.Tensor):
            raise HeadFormatError(f"{source}: unexpected key {key!r}")
        layers.setdefault(name, {})[kind] = value
    try:
        names = sorted(layers, key=_layer_order)
    except HeadFormatError as exc:
        raise HeadFormatError(f"{source}: {exc}") from None
    pairs = []
    for name in names:
        parts = layers[name]
        if set(parts) != {"weight", "bias"}:
            raise HeadFormatError(f"{source}: layer {name!r} needs both weight and bias")
        weight, bias = parts["weight"], parts["bias"]
        if weight.ndim != 2 or bias.shape != (weight.shape[0],):
            raise HeadFormatError(
                f"{source}: layer {name!r} has weight {tuple(weight.shape)} and bias {tuple(bias.shape)}")
        if pairs and pairs[-1][0].shape[0] != weight.shape[1]:
            raise HeadFormatError(f"{source}: layer {name!r} takes {weight.shape[1]} inputs but the "
                                  f"layer before gives {pairs[-1][0].shape[0]}")
        pairs.append((weight, bias))
    if pairs[-1][0].shape[0] != 1:
        raise HeadFormatError(f"{source}: the last layer gives {pairs[-1][0].shape[0]} outputs, not 1")
    styles = {"face" if n.startswith("layers.") else "voice" for n in names}
    if len(styles) > 1 or (styles == {"voice"} and names[0] != "proj"):
        raise HeadFormatError(f"{source}: layers {names} are neither layers.N nor proj + mlp.N")
    return pairs


def load_head_file(path: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    try:
        try:
            # mmap: tensors are read from the file as they are copied, not loaded up front.
            state_dict = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # files from before torch 1.6's zip format cannot be mapped
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise HeadFormatError(f"{path.name}: cannot be read as a torch state dict ({exc})") from None
    return parse_mlp_state_dict(state_dict, source=path.name)


class FusedHeads(nn.Module):
    """H MLP heads of identical architecture evaluated together: [N, D] -> [N, H]."""

    def __init__(self, heads: Iterable[Sequence[tuple[torch.Tensor, torch.Tensor]]],
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
                 num_heads: int | None = None, first_layer: str = "dense"):
        """``heads`` may be a lazy iterable (give ``num_heads`` then): each head is copied into the
        preallocated stack as it arrives, so loading holds the stack plus ONE head's tensors. That
        matters for the voice heads (295-590 MB each, 16-32 GB for 55 in fp32). ``first_layer``:
        dense (in ``dtype``) or int8 (see the module docstring)."""
        super().__init__()
        if first_layer not in FIRST_LAYER_FORMATS:
            raise ValueError(f"first layer format {first_layer!r}: use {' or '.join(FIRST_LAYER_FORMATS)}")
        self.quantised = first_layer == "int8"
        if num_heads is None:
            heads = list(heads)
            num_heads = len(heads)
        if num_heads < 1:
            raise HeadFormatError("no heads to fuse")
        self.num_heads = num_heads
        first_w = first_b = None
        later: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
        shape0 = None
        for h, head in enumerate(heads):
            shape = tuple(tuple(w.shape) for w, _ in head)
            if shape0 is None:
                shape0 = shape
                self.first_width, self.input_size = shape[0]
                # Allocated where it will live, in its final precision: never a second full copy.
                first_w = torch.empty((num_heads * self.first_width, self.input_size),
                                      dtype=torch.int8 if self.quantised else dtype, device=device)
                first_b = torch.empty((num_heads * self.first_width,), dtype=dtype, device=device)
                scales = torch.empty((num_heads * self.first_width,), dtype=torch.float32, device=device)
            elif shape != shape0:
                raise HeadFormatError(f"heads differ in architecture: {shape0} vs {shape}")
            if h >= num_heads:
                raise HeadFormatError(f"more than the {num_heads} heads announced")
            rows = slice(h * self.first_width, (h + 1) * self.first_width)
            if self.quantised:
                weight = head[0][0].to(device=device, dtype=torch.float32)
                scale = weight.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny) / 127.0
                first_w[rows].copy_(torch.round(weight / scale[:, None]).clamp_(-127, 127))
                scales[rows] = scale
                del weight
            else:
                first_w[rows].copy_(head[0][0])
            first_b[rows].copy_(head[0][1])
            later.append([(w.detach().clone(), b.detach().clone()) for w, b in head[1:]])
        if len(later) != num_heads:
            raise HeadFormatError(f"expected {num_heads} heads, got {len(later)}")
        self.dtype = dtype
        self.first_weight = nn.Parameter(first_w, requires_grad=False)
        self.first_bias = nn.Parameter(first_b, requires_grad=False)
        # One scale per row of the int8 matrix (unused when dense); kept in float32.
        self.register_buffer("first_scale", scales if self.quantised else scales[:0], persistent=False)
        self._int8_kernel = self.quantised and self._int8_kernel_runs()
        # Later layers as [H, in, out] so that baddbmm computes x @ W^T per head.
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([head[i][0].t() for head in later]).to(device, dtype).contiguous(),
                         requires_grad=False)
            for i in range(len(shape0) - 1))
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([head[i][1] for head in later]).to(device, dtype)[:, None, :].contiguous(),
                         requires_grad=False)
            for i in range(len(shape0) - 1))

    STACK_VERSION = 1

    def stack_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """The stacked weights as named CPU tensors and their description: what ``from_stack``
        rebuilds the module from without reading the head files again."""
        tensors = {"first_weight": self.first_weight, "first_bias": self.first_bias}
        if self.quantised:
            tensors["first_scale"] = self.first_scale
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            tensors[f"weight.{i}"], tensors[f"bias.{i}"] = weight, bias
        described = {"version": str(self.STACK_VERSION), "num_heads": str(self.num_heads),
                     "first_width": str(self.first_width), "input_size": str(self.input_size),
                     "first_layer": "int8" if self.quantised else "dense", "dtype": str(self.dtype)}
        return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, described

    @classmethod
    def from_stack(cls, tensors: Mapping[str, torch.Tensor], described: Mapping[str, str],
                   device: torch.device | str | None = None) -> "FusedHeads":
        """The module over tensors from ``stack_tensors`` (e.g. memory-mapped from a file: on the
        CPU nothing is copied, and processes mapping the same file share its pages)."""
        if described.get("version") != str(cls.STACK_VERSION):
            raise HeadFormatError(f"stacked heads of format {described.get('version')}, not {cls.STACK_VERSION}")
        module = cls.__new__(cls)
        nn.Module.__init__(module)
        module.num_heads = int(described["num_heads"])
        module.first_width, module.input_size = int(described["first_width"]), int(described["input_size"])
        module.quantised = described["first_layer"] == "int8"
        module.dtype = tensors["first_bias"].dtype
        module.first_weight = nn.Parameter(tensors["first_weight"].to(device), requires_grad=False)
        module.first_bias = nn.Parameter(tensors["first_bias"].to(device), requires_grad=False)
        scales = tensors["first_scale"] if module.quantised else torch.empty(0)
        module.register_buffer("first_scale", scales.to(device), persistent=False)
        layers = sum(1 for key in tensors if key.startswith("weight."))
        module.weights = nn.ParameterList(nn.Parameter(tensors[f"weight.{i}"].to(device), requires_grad=False)
                                          for i in range(layers))
        module.biases = nn.ParameterList(nn.Parameter(tensors[f"bias.{i}"].to(device), requires_grad=False)
                                         for i in range(layers))
        if tuple(module.first_weight.shape) != (module.num_heads * module.first_width, module.input_size):
            raise HeadFormatError(f"stacked heads hold {tuple(module.first_weight.shape)}, not the "
                                  f"{module.num_heads} x {module.first_width} rows they describe")
        module._int8_kernel = module.quantised and module._int8_kernel_runs()
        return module

    @classmethod
    def from_files(cls, paths: Sequence[Path], dtype: torch.dtype = torch.float32,
                   device: torch.device | str | None = None, first_layer: str = "dense") -> "FusedHeads":
        return cls((load_head_file(Path(p)) for p in paths), dtype=dtype, device=device,
                   num_heads=len(paths), first_layer=first_layer)

    def _int8_kernel_runs(self) -> bool:
        """Whether PyTorch's weight-only int8 product runs here, for these activations: on the CPU
        with bf16 it is the fastest way (it reads a quarter of the bytes); elsewhere, or where it
        does not exist, the rows are turned back into floats slice by slice."""
        if self.dtype != torch.bfloat16 or self.first_weight.device.type != "cpu":
            return False
        try:
            probe = torch.ops.aten._weight_int8pack_mm(
                torch.zeros(1, 64, dtype=self.dtype), torch.zeros(8, 64, dtype=torch.int8),
                torch.ones(8, dtype=self.dtype))
        except (RuntimeError, AttributeError, NotImplementedError):
            return False
        return probe.shape == (1, 8)

    def _first_layer(self, x: torch.Tensor) -> torch.Tensor:
        if not self.quantised:
            return nn.functional.linear(x, self.first_weight, self.first_bias)
        if self._int8_kernel and x.device.type == "cpu":
            return torch.ops.aten._weight_int8pack_mm(x, self.first_weight, self.first_scale.to(x.dtype)) + self.first_bias
        out = torch.empty((x.shape[0], self.first_weight.shape[0]), dtype=x.dtype, device=x.device)
        for first in range(0, self.first_weight.shape[0], DEQUANTISED_ROWS):
            rows = slice(first, first + DEQUANTISED_ROWS)
            weight = self.first_weight[rows].to(x.dtype) * self.first_scale[rows, None].to(x.dtype)
            out[:, rows] = nn.functional.linear(x, weight, self.first_bias[rows])
        return out

    @property
    def nbytes(self) -> int:
        """The weights' memory (parameters and scales)."""
        tensors = [*self.parameters(), self.first_scale]
        return sum(t.numel() * t.element_size() for t in tensors)

    @torch.inference_mode()
    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        x = embeddings.reshape(embeddings.shape[0], -1).to(self.dtype)
        n = x.shape[0]
        # [N, H*h1] -> [H, N, h1]
        hidden = self._first_layer(x)
        hidden = hidden.view(n, self.num_heads, self.first_width).transpose(0, 1)
        for weight, bias in zip(self.weights, self.biases):
            hidden = torch.baddbmm(bias, torch.relu(hidden), weight)
        return hidden.squeeze(-1).transpose(0, 1).float()
