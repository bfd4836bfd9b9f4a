"""Load a standalone VAE: a file with LDM keys (bare or prefixed) or diffusers keys, or a vae/ folder."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodes.sd.devices import resolve_placement
from nodes.sd.loading.detection import VAE_PREFIX, has_prefix
from nodes.sd.loading.model_configs import SCALING_FACTOR, given_configs, shipped_config
from nodes.sd.loading.strict import (
    build_vae,
    from_pretrained_strict,
    load_strict,
    place,
    under,
    unused_keys,
)
from nodes.sd.loading.weight_files import CheckpointError, listing, read_state_dict
from nodes.sd.offline import stay_offline
from nodes.sd.values import Family, VaeModel

if TYPE_CHECKING:
    import torch


def load_vae(
    path: str | Path,
    *,
    family: Family | None = None,
    config: Mapping[str, Any] | str | Path | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> VaeModel:
    """Load a VAE file (LDM keys, bare or prefixed, or diffusers keys) or a diffusers vae/ folder.

    The scaling factor cannot be read from the weights (SD1 and SDXL VAEs have the same shapes): it
    comes from the config, else `family`, else "xl" in the file name means SDXL, else SD1's 0.18215.
    """
    stay_offline()
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    file = Path(path)
    placement = resolve_placement(device, dtype)
    if file.is_dir():
        from diffusers import AutoencoderKL

        vae = from_pretrained_strict(AutoencoderKL, file, "vae", placement[1])
        return VaeModel(vae=place(vae, *placement), scaling_factor=float(vae.config.scaling_factor))

    state_dict, metadata = read_state_dict(file)
    given = given_configs(config, metadata, file)
    given_vae = dict((given or {}).get("vae") or {})
    guess: Family = family or ("sdxl" if "xl" in file.name.lower() else "sd1")
    vae_config = given_vae or shipped_config(guess)["vae"]
    vae_config["scaling_factor"] = float(given_vae.get("scaling_factor", SCALING_FACTOR[guess]))

    if any(k.startswith(("encoder.down_blocks.", "vae.encoder.down_blocks.")) for k in state_dict):
        source = converted = {k.removeprefix("vae."): v for k, v in state_dict.items()}
    elif any(
        k.startswith(("encoder.conv_in.", f"{VAE_PREFIX}encoder.", "vae.encoder."))
        for k in state_dict
    ):
        source = {k: v for k, v in state_dict.items() if not k.startswith(("loss.", "model_ema."))}
        converted = convert_ldm_vae_checkpoint(source, vae_config)
        # In a full checkpoint only the VAE's own tensors count; the UNet's are not "unused".
        if has_prefix(source, VAE_PREFIX):
            source = under(source, VAE_PREFIX)
    else:
        raise CheckpointError(
            f"{file.name} has no VAE weights; keys look like: {listing(sorted(state_dict), 5)}",
            code="not_a_vae",
            path=file,
        )
    model = build_vae(vae_config)
    load_strict(model, converted, component="VAE", path=file, unused=unused_keys(source, converted))
    return VaeModel(
        vae=place(model, *placement), scaling_factor=float(vae_config["scaling_factor"])
    )
