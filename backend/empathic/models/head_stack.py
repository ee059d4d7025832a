"""A stacked, memory-mappable copy of a model's heads, so that later loads skip the 55 files.

The first load stacks the head files as usual (``FusedHeads.from_files``) and writes the result to
``<cache dir>/<key>.safetensors``; later loads map that file. On the CPU the tensors stay backed by
the file (safetensors maps it), so loading takes a moment and several processes with the same
heads (gunicorn workers, RQ workers) share one copy in the page cache.

The key covers everything the stack depends on: each head file's name, the file it resolves to
(a Hugging Face snapshot links to a blob named by its content hash), its size and modification
time, the dtype, the first layer's format and the stack's format version. A copy that cannot be
written (read-only or full disk) is logged and skipped: the heads load from their files as before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from .heads import FusedHeads

log = logging.getLogger(__name__)


def head_cache_dir(text: str | None) -> Path | None:
    """A user's head cache setting: a folder (``~`` expanded), or None for ``off``/``none``/empty."""
    return None if text is None or text.strip().lower() in ("", "off", "none") else Path(text.strip()).expanduser()


def stack_key(paths: Sequence[Path], dtype: torch.dtype, first_layer: str) -> str:
    described = []
    for path in paths:
        path = Path(path)
        target = path.resolve()
        stat = target.stat()
        described.append([path.name, target.name, stat.st_size, stat.st_mtime_ns])
    text = json.dumps({"files": described, "dtype": str(dtype), "first_layer": first_layer,
                       "version": FusedHeads.STACK_VERSION})
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load_stacked_heads(paths: Sequence[Path], dtype: torch.dtype, device: torch.device | str | None,
                       first_layer: str, cache_dir: Path | None) -> FusedHeads:
    """The heads from their stacked copy in ``cache_dir`` if one is there, else from their files
    (writing the copy for next time). ``cache_dir`` None: always from the files."""
    if cache_dir is None:
        return FusedHeads.from_files(paths, dtype=dtype, device=device, first_layer=first_layer)
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    target = Path(cache_dir) / f"{stack_key(paths, dtype, first_layer)}.safetensors"
    if target.exists():
        try:
            with safe_open(str(target), framework="pt") as handle:
                described = handle.metadata() or {}
            heads = FusedHeads.from_stack(load_file(str(target)), described, device=device)
        except Exception as exc:  # a damaged or foreign file (safetensors has its own error type): rebuild it
            log.warning("stacked heads %s cannot be used (%s): loading from the head files", target, exc)
        else:
            log.info("heads mapped from %s", target)
            return heads
    heads = FusedHeads.from_files(paths, dtype=dtype, device=device, first_layer=first_layer)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tensors, described = heads.stack_tensors()
        handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".partial")
        os.close(handle)
        try:
            save_file(tensors, temporary, metadata=described)
            os.replace(temporary, target)  # whole or not at all, even with several writers
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        log.info("wrote stacked heads to %s", target)
    except OSError as exc:
        log.warning("stacked heads not written to %s (%s): the next load reads the head files again",
                    target.parent, exc)
    return heads
