"""What a weights file holds: the model family (SD1, SD2, SDXL or a ControlNet) and prediction type.

The family comes from the text encoder's key layout (`cond_stage_model.transformer.` = SD1,
`cond_stage_model.model.` = SD2, `conditioner.embedders.1.model.` = SDXL base), cross-checked with the
UNet's cross-attention width (768 / 1024 / 2048). SD2 v-prediction cannot be seen from the keys, so the
prediction type is, first match wins: the `prediction_type=` argument; the config's `prediction_type`
when the config came from the argument or the metadata; `parameterization: "v"` in an A1111-style
sidecar `<name>.yaml`; a `v_pred` key in the file (ComfyUI's marker); "vpred"/"v-pred"/"v_pred"/"768-v"
in the file name; for SD2 only, ComfyUI's heuristic (std of
`output_blocks.11.1.transformer_blocks.0.norm1.bias` above 0.09 means v); otherwise epsilon. The
first two rules are the loader's (`single_file.py`); this module applies the rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from nodes.sd.loading.weight_files import CheckpointError, listing
from nodes.sd.values import Family, Prediction

CONTEXT_DIM: dict[Family, int] = {"sd1": 768, "sd2": 1024, "sdxl": 2048}

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_L_PREFIX = "cond_stage_model.transformer."
OPEN_CLIP_H_PREFIX = "cond_stage_model.model."
SDXL_CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
SDXL_CLIP_G_PREFIX = "conditioner.embedders.1.model."
SDXL_REFINER_PREFIX = "conditioner.embedders.0.model."
CONTROLNET_PREFIX = "control_model."
CONTROLNET_SENTINELS = (
    "control_model.time_embed.0.weight",
    "controlnet_cond_embedding.conv_in.weight",
    "input_hint_block.0.weight",
)
SD2_V_SENTINEL = "output_blocks.11.1.transformer_blocks.0.norm1.bias"

Kind = Literal["sd1", "sd2", "sdxl", "controlnet"]


def detect_family(state_dict: Mapping[str, Any]) -> Kind:
    """sd1, sd2, sdxl or controlnet, from the text encoder's key layout and the UNet's context width."""
    if any(key in state_dict for key in CONTROLNET_SENTINELS) or has_prefix(
        state_dict, CONTROLNET_PREFIX
    ):
        return "controlnet"
    if not has_prefix(state_dict, UNET_PREFIX):
        raise CheckpointError(
            f"no Stable Diffusion UNet weights (no key starts with {UNET_PREFIX!r}); "
            f"keys look like: {listing(sorted(state_dict), 5)}",
            code="not_a_checkpoint",
        )
    if has_prefix(state_dict, SDXL_REFINER_PREFIX) and not has_prefix(
        state_dict, SDXL_CLIP_G_PREFIX
    ):
        raise CheckpointError("SDXL refiner checkpoints are not supported", code="unsupported")
    context = _context_dim(state_dict, UNET_PREFIX)
    family: Family
    # The text encoder's layout decides; the UNet's width alone serves files without one.
    if has_prefix(state_dict, SDXL_CLIP_G_PREFIX):
        family = "sdxl"
    elif has_prefix(state_dict, OPEN_CLIP_H_PREFIX):
        family = "sd2"
    elif has_prefix(state_dict, CLIP_L_PREFIX):
        family = "sd1"
    elif context == CONTEXT_DIM["sdxl"] and f"{UNET_PREFIX}label_emb.0.0.weight" in state_dict:
        family = "sdxl"
    elif context == CONTEXT_DIM["sd2"]:
        family = "sd2"
    elif context == CONTEXT_DIM["sd1"]:
        family = "sd1"
    else:
        raise CheckpointError(
            f"the UNet's cross-attention width {context} and the text-encoder keys match no known "
            "family (SD1 768, SD2 1024, SDXL 2048)",
            code="unknown_family",
        )
    if context in CONTEXT_DIM.values() and context != CONTEXT_DIM[family]:
        raise CheckpointError(
            f"inconsistent checkpoint: the text encoder is {family}'s but the UNet's cross-attention "
            f"width is {context}, not {CONTEXT_DIM[family]}",
            code="wrong_family",
        )
    return family


def has_prefix(state_dict: Mapping[str, Any], prefix: str) -> bool:
    return any(key.startswith(prefix) for key in state_dict)


def _context_dim(state_dict: Mapping[str, Any], prefix: str) -> int | None:
    for key, value in state_dict.items():
        if key.startswith(prefix) and key.endswith("attn2.to_k.weight"):
            return int(value.shape[1])
    return None


def detect_prediction_type(
    path: str | Path, state_dict: Mapping[str, Any], family: Family, in_channels: int = 4
) -> Prediction:
    """The prediction type when neither the caller nor a config says (rule in the module docstring)."""
    file = Path(path)
    sidecar = file.with_suffix(".yaml")
    if sidecar.is_file() and re.search(
        r"parameterization:\s*[\"']?v[\"']?\s*$", sidecar.read_text(errors="replace"), re.MULTILINE
    ):
        return "v_prediction"
    if "v_pred" in state_dict or re.search(r"v[-_]?pred|768-v", file.name.lower()):
        return "v_prediction"
    if family == "sd2" and in_channels == 4:
        bias = state_dict.get(UNET_PREFIX + SD2_V_SENTINEL)
        # ComfyUI's heuristic: v-prediction fine-tunes moved this norm's bias far from zero.
        if bias is not None and float(bias.float().std(unbiased=False)) > 0.09:
            return "v_prediction"
    return "epsilon"
