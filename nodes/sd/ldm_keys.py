"""diffusers/transformers weights renamed to the original (LDM/CompVis) single-file layout.

The tiny models (`tiny_models.py`) and the demo model (`train/`) are written with these, so that
they load through the same code as real checkpoints. The mapping is written independently of
diffusers' converters (which go the other way), so a round trip through the loader checks both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import torch

UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
UNET_RESNET = (
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
)


def unet_block_prefixes(config: dict[str, Any], with_up: bool = True) -> Iterator[tuple[str, str]]:
    """(diffusers prefix, LDM prefix) for every UNet (or ControlNet) block."""
    blocks, layers = len(config["block_out_channels"]), config["layers_per_block"]
    down_attn = [t.startswith("CrossAttn") for t in config["down_block_types"]]
    up_attn = [t.startswith("CrossAttn") for t in config["up_block_types"]]
    for i in range(blocks):
        for j in range(layers):
            yield f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{1 + i * (layers + 1) + j}.0."
            if down_attn[i]:
                yield (
                    f"down_blocks.{i}.attentions.{j}.",
                    f"input_blocks.{1 + i * (layers + 1) + j}.1.",
                )
        if i < blocks - 1:
            yield (
                f"down_blocks.{i}.downsamplers.0.conv.",
                f"input_blocks.{(i + 1) * (layers + 1)}.0.op.",
            )
        if not with_up:
            continue
        for j in range(layers + 1):
            yield f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{i * (layers + 1) + j}.0."
            if up_attn[i]:
                yield f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{i * (layers + 1) + j}.1."
        if i < blocks - 1:
            slot = 2 if up_attn[i] else 1
            yield (
                f"up_blocks.{i}.upsamplers.0.",
                f"output_blocks.{i * (layers + 1) + layers}.{slot}.",
            )
    yield "mid_block.attentions.0.", "middle_block.1."
    yield "mid_block.resnets.0.", "middle_block.0."
    yield "mid_block.resnets.1.", "middle_block.2."


def _unet_key(key: str, prefixes: list[tuple[str, str]]) -> str:
    module, _, leaf = key.rpartition(".")
    if module in UNET_TOP:
        return f"{UNET_TOP[module]}.{leaf}"
    if "resnets" in key:
        for new, old in UNET_RESNET:
            key = key.replace(f".{new}.", f".{old}.")
    # Transformer internals keep their diffusers names in the LDM layout.
    return next(ldm + key[len(ours) :] for ours, ldm in prefixes if key.startswith(ours))


def unet_to_ldm(
    state_dict: dict[str, torch.Tensor],
    config: dict[str, Any],
    prefix: str = "model.diffusion_model.",
) -> dict[str, torch.Tensor]:
    """A diffusers UNet state dict in the original single-file layout."""
    prefixes = list(unet_block_prefixes(config))
    return {prefix + _unet_key(k, prefixes): v for k, v in state_dict.items()}


def controlnet_to_ldm(
    state_dict: dict[str, torch.Tensor], unet_config: dict[str, Any], prefix: str = "control_model."
) -> dict[str, torch.Tensor]:
    """A diffusers ControlNet state dict in the original `control_model.*` layout."""
    prefixes = list(unet_block_prefixes(unet_config, with_up=False))
    blocks = len(
        {k.split(".")[2] for k in state_dict if k.startswith("controlnet_cond_embedding.blocks.")}
    )
    out = {}
    for key, value in state_dict.items():
        module, _, leaf = key.rpartition(".")
        parts = module.split(".")
        if module.startswith("controlnet_down_blocks."):
            new = f"zero_convs.{parts[1]}.0.{leaf}"
        elif module == "controlnet_mid_block":
            new = f"middle_block_out.0.{leaf}"
        elif module == "controlnet_cond_embedding.conv_in":
            new = f"input_hint_block.0.{leaf}"
        elif module.startswith("controlnet_cond_embedding.blocks."):
            new = f"input_hint_block.{2 * (int(parts[2]) + 1)}.{leaf}"
        elif module == "controlnet_cond_embedding.conv_out":
            new = f"input_hint_block.{2 * (blocks + 1)}.{leaf}"
        else:
            new = _unet_key(key, prefixes)
        out[prefix + new] = value
    return out


VAE_ATTENTION = (
    ("group_norm.", "norm."),
    ("to_q.", "q."),
    ("to_k.", "k."),
    ("to_v.", "v."),
    ("to_out.0.", "proj_out."),
)


def vae_to_ldm(
    state_dict: dict[str, torch.Tensor], config: dict[str, Any], prefix: str = "first_stage_model."
) -> dict[str, torch.Tensor]:
    """A diffusers AutoencoderKL state dict in the original layout (attention as 1x1 convolutions)."""
    blocks, layers = len(config["block_out_channels"]), config["layers_per_block"]
    renames = [
        ("conv_shortcut", "nin_shortcut"),
        ("conv_norm_out", "norm_out"),
        ("mid_block.attentions.0.", "mid.attn_1."),
    ]
    for i in range(blocks):
        renames += [
            (f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}.")
            for j in range(layers)
        ]
        renames += [
            (f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{blocks - 1 - i}.block.{j}.")
            for j in range(layers + 1)
        ]
        if i < blocks - 1:
            renames += [
                (f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample."),
                (f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{blocks - 1 - i}.upsample."),
            ]
    renames += [(f"mid_block.resnets.{i}.", f"mid.block_{i + 1}.") for i in range(2)]
    out = {}
    for key, value in state_dict.items():
        new = key
        for ours, ldm in renames:
            new = new.replace(ours, ldm)
        if "mid.attn_1." in new:
            for ours, ldm in VAE_ATTENTION:
                new = new.replace(ours, ldm)
            if (
                new.endswith(("q.weight", "k.weight", "v.weight", "proj_out.weight"))
                and value.ndim == 2
            ):
                value = value.reshape(*value.shape, 1, 1)
        out[prefix + new] = value
    return out


def clip_to_ldm(
    state_dict: dict[str, torch.Tensor], prefix: str = "cond_stage_model.transformer."
) -> dict[str, torch.Tensor]:
    """A transformers CLIPTextModel state dict in SD1's layout (`<prefix>text_model.*`)."""
    return {
        prefix + (k if k.startswith("text_model.") else f"text_model.{k}"): v
        for k, v in state_dict.items()
    }


OPEN_CLIP_RENAMES = (
    ("self_attn.out_proj.", "attn.out_proj."),
    ("layer_norm1.", "ln_1."),
    ("layer_norm2.", "ln_2."),
    ("mlp.fc1.", "mlp.c_fc."),
    ("mlp.fc2.", "mlp.c_proj."),
)
OPEN_CLIP_TOP = {
    "embeddings.token_embedding.weight": "token_embedding.weight",
    "embeddings.position_embedding.weight": "positional_embedding",
    "final_layer_norm.weight": "ln_final.weight",
    "final_layer_norm.bias": "ln_final.bias",
}


def open_clip_to_ldm(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """A transformers CLIP text model in OpenCLIP's layout: fused q/k/v, (width, dim) projection."""
    out: dict[str, torch.Tensor] = {
        prefix + "logit_scale": torch.tensor(4.6052)
    }  # real files have it
    fused: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        key = key.removeprefix("text_model.")
        if key == "text_projection.weight":
            out[prefix + "text_projection"] = value.T.contiguous()
            continue
        if key in OPEN_CLIP_TOP:
            out[prefix + OPEN_CLIP_TOP[key]] = value
            continue
        match = re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", key)
        assert match is not None, key
        layer, rest = match.groups()
        qkv = re.fullmatch(r"self_attn\.([qkv])_proj\.(weight|bias)", rest)
        if qkv:
            fused.setdefault((layer, qkv[2]), {})[qkv[1]] = value
            continue
        for ours, theirs in OPEN_CLIP_RENAMES:
            rest = rest.replace(ours, theirs)
        out[f"{prefix}transformer.resblocks.{layer}.{rest}"] = value
    for (layer, leaf), parts in fused.items():
        out[f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{leaf}"] = torch.cat(
            [parts["q"], parts["k"], parts["v"]]
        )
    return out
