"""The one progress-hook type: ``hook(step, completed, total)`` is called as work advances; it feeds
the CLI's progress bars and the background jobs' status (total None: not known yet)."""

from __future__ import annotations

from collections.abc import Callable

ProgressHook = Callable[[str, int, "int | None"], None]
