"""Where the engine finds models and inputs and writes outputs: CLI flag, then environment, then config file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_ENV = "LATENTGRAPH_CONFIG"
ENV_VARS = {
    "models": "LATENTGRAPH_MODELS",
    "input": "LATENTGRAPH_INPUT",
    "output": "LATENTGRAPH_OUTPUT",
}
DEFAULT_CONFIG_FILE = "latentgraph.json"


@dataclass(frozen=True)
class Paths:
    """The three folders a run touches; `models` holds checkpoints/, vae/, loras/ and controlnet/."""

    models: Path
    input: Path
    output: Path

    @classmethod
    def resolve(
        cls,
        models: str | Path | None = None,
        input: str | Path | None = None,
        output: str | Path | None = None,
        config_file: str | Path | None = None,
        env: dict[str, str] | None = None,
    ) -> Paths:
        """Each folder comes from its argument, else its environment variable, else the config file.

        The config file is `$LATENTGRAPH_CONFIG`, else `./latentgraph.json` when present: a JSON
        object with optional "models", "input" and "output" keys, relative to the file's folder.
        """
        env = dict(os.environ) if env is None else env
        explicit = config_file or env.get(CONFIG_ENV)
        file_values = _read_config(explicit or DEFAULT_CONFIG_FILE, required=bool(explicit))
        given = {"models": models, "input": input, "output": output}
        chosen: dict[str, Path] = {}
        for key, default in (("models", "models"), ("input", "input"), ("output", "output")):
            value = given[key] or env.get(ENV_VARS[key]) or file_values.get(key) or default
            chosen[key] = Path(value).expanduser().resolve()
        return cls(**chosen)


@dataclass(frozen=True)
class ComputeOptions:
    """How nodes run their models; every option is off unless a command turns it on."""

    # Run UNet and ControlNet forwards through torch.compile (`--compile`): the first run of
    # each model and shape compiles (minutes for a full UNet on a CPU), later runs reuse it.
    compile: bool = False


class ConfigError(ValueError):
    """A config file that is missing, unreadable or malformed; the message names the file and key."""


def _read_config(path: str | Path, required: bool) -> dict[str, Any]:
    """The folders a config file names; `required` when the user pointed at it explicitly."""
    from engine.documents import DocumentError, parse_json

    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {file} does not exist (set by ${CONFIG_ENV})") from None
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror or exc}") from None
    try:
        data = parse_json(raw, f"config file {file}")
    except DocumentError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(data, dict):
        raise ConfigError(f'config file {file} must hold a JSON object, like {{"models": "DIR"}}')
    chosen = {}
    for key, value in data.items():
        if key not in ENV_VARS:
            known = ", ".join(ENV_VARS)
            raise ConfigError(f"config file {file}: unknown key {key!r} (keys: {known})")
        if value is None:
            continue
        if not isinstance(value, str) or not value or "\x00" in value:
            raise ConfigError(f"config file {file}: {key!r} must be a folder path (a string)")
        chosen[key] = str((file.parent / value).expanduser().resolve())
    return chosen
