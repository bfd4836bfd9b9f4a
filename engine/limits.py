"""The engine's resource limits, each configurable by an environment variable (see docs/limits.md).

They are read when checked, not at import, so a test or a long-lived server sees a change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from engine.config import ConfigError

MIB = 1024 * 1024
ENV_VARS = {
    "max_pixels": "LATENTGRAPH_MAX_PIXELS",
    "max_prompt_chars": "LATENTGRAPH_MAX_PROMPT_CHARS",
    "max_token_windows": "LATENTGRAPH_MAX_TOKEN_WINDOWS",
    "max_batch": "LATENTGRAPH_MAX_BATCH",
    "memory_budget": "LATENTGRAPH_MEMORY_BUDGET",
}


@dataclass(frozen=True)
class Limits:
    """What one run may ask for; defaults suit one user on one device."""

    # Pixels of one image or latent (width × height): 4096 × 4096 by default.
    max_pixels: int = 4096 * 4096
    # Characters of one prompt, and 77-token windows it may make (each costs an encoder pass).
    max_prompt_chars: int = 20_000
    max_token_windows: int = 64
    # Images in one latent or image batch.
    max_batch: int = 64
    # Bytes one node may need on its device; 0 means "what the device has free now".
    memory_budget: int = 0


def limits(env: Mapping[str, str] | None = None) -> Limits:
    """The limits in force: defaults, overridden by their environment variables."""
    # os.environ itself, not a copy: copying decodes every variable, and runs check limits often.
    env = os.environ if env is None else env
    values = {}
    for field, var in ENV_VARS.items():
        raw = env.get(var)
        if raw is None or raw.strip() == "":
            continue
        try:
            value = int(raw.strip().replace("_", ""))
        except ValueError:
            raise ConfigError(f"${var} must be a whole number, not {raw!r}") from None
        if value < 0 or (value == 0 and field != "memory_budget"):
            raise ConfigError(f"${var} must be positive, not {raw!r}")
        values[field] = value
    return Limits(**values)


def format_bytes(count: float) -> str:
    """1536 → "1.5 KiB"."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024:
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} TiB"
