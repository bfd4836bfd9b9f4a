"""Load a diffusers pipeline folder (unet/, vae/, text_encoder/[, text_encoder_2/]) offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodes.sd.devices import resolve_placement
from nodes.sd.loading.detection import CONTEXT_DIM
from nodes.sd.loading.model_configs import noise_schedule, shipped_config
from nodes.sd.loading.strict import from_pretrained_strict, place
from nodes.sd.loading.weight_files import CheckpointError
from nodes.sd.tokenizer import clip_tokenizer
from nodes.sd.values import Checkpoint, ClipModel, Family, Prediction, UNetModel, VaeModel

if TYPE_CHECKING:
    import torch


def load_diffusers_folder(
    path: str | Path,
    *,
    prediction_type: Prediction | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> Checkpoint:
    """Load a diffusers pipeline folder (unet/, vae/, text_encoder/[, text_encoder_2/]) offline.

    tokenizer folders are not needed: the CLIP tokenizer ships with this package.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    folder = Path(path)
    for part in ("unet", "vae", "text_encoder"):
        if not (folder / part / "config.json").is_file():
            raise CheckpointError(
                f"{folder.name} is not a diffusers folder: {part}/config.json is missing",
                code="not_a_checkpoint",
                path=folder,
            )
    te_config = json.loads((folder / "text_encoder" / "config.json").read_text(encoding="utf-8"))
    family: Family
    if (folder / "text_encoder_2").is_dir():
        family = "sdxl"
    elif te_config.get("hidden_size") == CONTEXT_DIM["sd2"]:
        family = "sd2"
    else:
        family = "sd1"
    scheduler_file = folder / "scheduler" / "scheduler_config.json"
    scheduler = (
        json.loads(scheduler_file.read_text(encoding="utf-8"))
        if scheduler_file.is_file()
        else shipped_config(family)["scheduler"]
    )
    prediction: Prediction = prediction_type or scheduler.get("prediction_type", "epsilon")
    device_, dtype_ = resolve_placement(device, dtype)

    def pretrained(cls: Any, part: str, dtype_key: str) -> Any:
        return place(
            from_pretrained_strict(cls, folder / part, part, dtype_, dtype_key), device_, dtype_
        )

    unet = pretrained(UNet2DConditionModel, "unet", "torch_dtype")
    vae = pretrained(AutoencoderKL, "vae", "torch_dtype")
    text_encoder = pretrained(CLIPTextModel, "text_encoder", "dtype")
    text_encoder_2 = (
        pretrained(CLIPTextModelWithProjection, "text_encoder_2", "dtype")
        if family == "sdxl"
        else None
    )
    return Checkpoint(
        unet=UNetModel(
            unet=unet, family=family, prediction_type=prediction, schedule=noise_schedule(scheduler)
        ),
        clip=ClipModel(
            tokenizer=clip_tokenizer(),
            text_encoder=text_encoder,
            family=family,
            text_encoder_2=text_encoder_2,
            tokenizer_2=clip_tokenizer() if text_encoder_2 is not None else None,
        ),
        vae=VaeModel(vae=vae, scaling_factor=float(vae.config.scaling_factor)),
    )
