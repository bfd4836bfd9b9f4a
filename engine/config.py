"""Where the engine finds models and inputs and writes outputs: CLI flag, then environment, then config file."""

from __future__ import annotations

import json
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
        file_values = _read_config(config_file or env.get(CONFIG_ENV) or DEFAULT_CONFIG_FILE)
        given = {"models": models, "input": input, "output": output}
        chosen: dict[str, Path] = {}
        for key, default in (("models", "models"), ("input", "input"), ("output", "output")):
            value = given[key] or env.get(ENV_VARS[key]) or file_values.get(key) or default
            chosen[key] = Path(value).expanduser().resolve()
        return cls(**chosen)


def _read_config(path: str | Path) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        return {}
    data = json.loads(file.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{file}: the config file must hold a JSON object")
    return {k: str((file.parent / str(v)).resolve()) for k, v in data.items() if v is not None}
