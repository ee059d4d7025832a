"""Loading and running transformers models without its chatter."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def quiet_transformers():
    """Only errors from transformers, and no progress bars, inside the block: the caller shows its
    own progress, and what transformers says there (unused weights of towers we drop on purpose,
    legacy generation-config fields of the original checkpoints, Whisper's generate passing
    suppress_tokens beside a generation config) is nothing a user can act on. Both settings are
    put back as they were."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
