"""The demo model's architecture: SD1's components (diffusers/transformers classes), sized for 64 px.

The VAE keeps SD's 8x downsampling and 4 latent channels (64 px -> 8x8x4), the UNet has
cross-attention at both of its resolutions, and the text encoder is a two-layer CLIP text model
over the real CLIP vocabulary (49,408 tokens, 77 positions), so the project's tokenizer feeds it.
"""

from __future__ import annotations

from typing import Any

from nodes.sd.tiny_models import SD1_SCHEDULER, TINY_CLIP

VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 1,
    "block_out_channels": (16, 32, 64, 64),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    # 4-8 channels per group: with one channel per group, GroupNorm erases flat colours.
    "norm_num_groups": 4,
    "sample_size": 64,
    "scaling_factor": 1.0,  # replaced by 1/std of the training latents once the VAE is trained
}
# The tiny test models' CLIP (the real vocabulary, 77 positions, CLIP's token ids), wider and shallower.
TEXT_CONFIG: dict[str, Any] = {
    **TINY_CLIP,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "projection_dim": 64,
}
UNET_CONFIG: dict[str, Any] = {
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 1,
    "block_out_channels": (32, 64),
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 64,
    "attention_head_dim": 4,
    "norm_num_groups": 8,
}
CONTROLNET_EMBEDDING = (16, 16, 32, 32)
# SD1's training noise schedule, so the project's samplers and schedulers apply unchanged.
SCHEDULER_CONFIG: dict[str, Any] = {k: v for k, v in SD1_SCHEDULER.items() if k != "_class_name"}


def build_vae() -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(**VAE_CONFIG)


def build_text_encoder() -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))


def build_unet() -> Any:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**UNET_CONFIG)


def build_controlnet(unet: Any) -> Any:
    from diffusers import ControlNetModel

    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=CONTROLNET_EMBEDDING)
