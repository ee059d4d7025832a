"""Checking weight files against the SHA256 their Hugging Face file pages publish.

A repository can change under a pinned name ("main"), and a download can be cut short or a disk
damage a file: either way the heads would load and score wrongly without a word. Hashing is
exact but costs about a second per GB, so a file already checked in this process (same resolved
path, size and modification time) is not hashed again.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from pathlib import Path

CHUNK_BYTES = 8 * 1024 * 1024

_checked: set[tuple[str, int, int, str]] = set()
_checked_lock = threading.Lock()


class WeightChecksumError(RuntimeError):
    """A weight file's content differs from the SHA256 published for it."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_files(folder: Path, expected: Mapping[str, str], repo_id: str, source: str = "") -> tuple[str, ...]:
    """The names of ``expected`` found in ``folder`` and checked; raises WeightChecksumError (one
    line naming the file) at the first that differs. Files that are not there are left to the
    caller's required-files check."""
    checked = []
    for name, sha256 in sorted(expected.items()):
        path = Path(folder) / name
        if not path.is_file():
            continue
        target = path.resolve()
        stat = target.stat()
        key = (str(target), stat.st_size, stat.st_mtime_ns, sha256.lower())
        with _checked_lock:
            known = key in _checked
        if not known:
            actual = file_sha256(target)
            if actual != sha256.lower():
                where = f" ({source})" if source else ""
                raise WeightChecksumError(
                    f"{repo_id}: {name} has SHA256 {actual}, not the published {sha256.lower()}{where}; the "
                    f"file was changed or damaged: fetch it again, choose the revision you mean (--revision, "
                    f"MODEL_REVISIONS), or turn the check off")
            with _checked_lock:
                _checked.add(key)
        checked.append(name)
    return tuple(checked)
