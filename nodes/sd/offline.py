"""Keep huggingface_hub and transformers off the network: this project never downloads a model."""

from __future__ import annotations

import os


def stay_offline() -> None:
    """Tell huggingface_hub and transformers to stay offline, unless the environment already says.

    huggingface_hub reads these when it is first imported, so the front ends (CLI, server) and
    every model loader call this before anything imports diffusers or transformers; the loaders
    also pass `local_files_only=True`, which holds even when it comes too late.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
