"""The diffusers configs a single file is built from, in this order of preference.

1. the `config=` argument: a dict, or a JSON file, shaped like `configs/sd1.json`
   (`{"family", "prediction_type", "unet", "vae", "text_encoder"[, "text_encoder_2"], "scheduler"}`);
2. the file's own safetensors metadata key `latentgraph.configs`, the same JSON as a string; this is
   how the tiny models (`nodes/sd/tiny_models.py`) go through the real loading code;
3. the shipped config of the detected family (`configs/sd1.json`, `sd2.json`, `sd2-v.json`,
   `sdxl.json`), with the UNet's input channels read from the file (so inpainting models load).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from nodes.sd.loading.weight_files import CheckpointError
from nodes.sd.values import Family, NoiseSchedule

CONFIG_DIR = Path(__file__).parent.parent / "configs"
METADATA_CONFIGS = "latentgraph.configs"
SCALING_FACTOR: dict[Family, float] = {"sd1": 0.18215, "sd2": 0.18215, "sdxl": 0.13025}


def shipped_config(variant: str) -> dict[str, Any]:
    """One of the configs shipped in `configs/`: "sd1", "sd2", "sd2-v" or "sdxl"."""
    file = CONFIG_DIR / f"{variant}.json"
    if not file.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.json"))
        raise ValueError(f"no shipped config {variant!r}; known: {', '.join(known)}")
    configs: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    return configs


def given_configs(
    config: Mapping[str, Any] | str | Path | None, metadata: Mapping[str, str], file: Path
) -> dict[str, Any] | None:
    """The configs from the argument, else from the file's metadata, else None."""
    if isinstance(config, (str, Path)):
        try:
            read: dict[str, Any] = json.loads(Path(config).read_text(encoding="utf-8"))
            return read
        except (OSError, ValueError) as error:
            raise CheckpointError(
                f"config {config} could not be read: {error}", code="bad_config", path=file
            ) from None
    if config is not None:
        return dict(config)
    if METADATA_CONFIGS in metadata:
        try:
            stored: dict[str, Any] = json.loads(metadata[METADATA_CONFIGS])
            return stored
        except ValueError as error:
            raise CheckpointError(
                f"{file.name}: metadata {METADATA_CONFIGS!r} is not valid JSON ({error})",
                code="bad_config",
                path=file,
            ) from None
    return None


def require_sections(configs: Mapping[str, Any], components: Iterable[str], file: Path) -> None:
    missing = [name for name in components if not isinstance(configs.get(name), Mapping)]
    if missing:
        raise CheckpointError(
            f"{file.name}: the config has no {', '.join(missing)} section",
            code="bad_config",
            path=file,
        )


def noise_schedule(scheduler: Mapping[str, Any]) -> NoiseSchedule:
    defaults = NoiseSchedule()
    return NoiseSchedule(
        beta_start=float(scheduler.get("beta_start", defaults.beta_start)),
        beta_end=float(scheduler.get("beta_end", defaults.beta_end)),
        beta_schedule=str(scheduler.get("beta_schedule", defaults.beta_schedule)),
        num_train_timesteps=int(scheduler.get("num_train_timesteps", defaults.num_train_timesteps)),
    )
