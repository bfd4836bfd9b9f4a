"""Load a ControlNet (original `control_model.*` layout, bare, diffusers keys, or a folder).

When neither the caller nor the file gives a config, it is derived from the weights' shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodes.sd.devices import resolve_placement
from nodes.sd.loading.detection import CONTEXT_DIM, CONTROLNET_PREFIX, UNET_PREFIX, has_prefix
from nodes.sd.loading.model_configs import given_configs, shipped_config
from nodes.sd.loading.strict import (
    build_controlnet,
    from_pretrained_strict,
    load_strict,
    place,
    under,
    unused_keys,
)
from nodes.sd.loading.weight_files import CheckpointError, listing, read_state_dict
from nodes.sd.offline import stay_offline
from nodes.sd.values import ControlNetModel

if TYPE_CHECKING:
    import torch


def load_controlnet(
    path: str | Path,
    *,
    config: Mapping[str, Any] | str | Path | None = None,
    unet_config: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> ControlNetModel:
    """Load a ControlNet: original `control_model.*` layout (or bare), diffusers keys, or a folder.

    The config comes from `config` (its "controlnet" section, or the dict itself), else the file's
    metadata, else it is derived from the weights' shapes on top of `unet_config` (or the shipped
    UNet config of the family its cross-attention width names). diffusers' own
    `create_controlnet_diffusers_config_from_ldm` is broken in 0.42 and is not used.
    """
    stay_offline()
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    file = Path(path)
    placement = resolve_placement(device, dtype)
    if file.is_dir():
        from diffusers import ControlNetModel as DiffusersControlNet

        model = from_pretrained_strict(DiffusersControlNet, file, "controlnet", placement[1])
        return ControlNetModel(controlnet=place(model, *placement), name=file.name)

    state_dict, metadata = read_state_dict(file)
    if has_prefix(state_dict, CONTROLNET_PREFIX):
        source = {
            k.removeprefix(CONTROLNET_PREFIX): v
            for k, v in under(state_dict, CONTROLNET_PREFIX).items()
        }
    else:
        source = state_dict
    if (
        "time_embedding.linear_1.weight" in source
        and "controlnet_cond_embedding.conv_in.weight" in source
    ):
        converted = source
    elif "time_embed.0.weight" in source and "input_hint_block.0.weight" in source:
        converted = convert_controlnet_checkpoint(
            source, {"layers_per_block": _ldm_layers_per_block(source, file)}
        )
    else:
        hint = " (it looks like a full checkpoint)" if has_prefix(state_dict, UNET_PREFIX) else ""
        raise CheckpointError(
            f"{file.name} is not a ControlNet{hint}; keys look like: {listing(sorted(state_dict), 5)}",
            code="wrong_family",
            path=file,
        )

    given = given_configs(config, metadata, file)
    if given is not None:
        cn_config = dict(given.get("controlnet") or given)
    else:
        cn_config = controlnet_config_from_weights(converted, unet_config, file)
    model = build_controlnet(cn_config)
    load_strict(
        model, converted, component="ControlNet", path=file, unused=unused_keys(source, converted)
    )
    return ControlNetModel(controlnet=place(model, *placement), name=file.name)


def _ldm_layers_per_block(weights: Mapping[str, Any], file: Path) -> int:
    """Resnets per block: the first downsampler sits at input block layers_per_block + 1."""
    blocks = sorted({int(k.split(".")[1]) for k in weights if k.startswith("input_blocks.")})
    for index in blocks:
        if f"input_blocks.{index}.0.op.weight" in weights:
            return index - 1
    if not blocks:
        raise CheckpointError(
            f"{file.name}: ControlNet has no input blocks", code="corrupt", path=file
        )
    return blocks[-1]


def controlnet_config_from_weights(
    weights: Mapping[str, torch.Tensor],
    unet_config: Mapping[str, Any] | None = None,
    path: str | Path | None = None,
) -> dict[str, Any]:
    """A diffusers ControlNet config from diffusers-layout weights' shapes, on top of a UNet config.

    Shapes fix the block layout, widths and conditioning embedding; what they cannot show (attention
    head sizes, upcasting) comes from `unet_config`, by default the shipped config of the family
    whose cross-attention width the weights have.
    """
    import inspect

    from diffusers import ControlNetModel as DiffusersControlNet

    def shape(key: str) -> tuple[int, ...]:
        if key not in weights:
            raise CheckpointError(
                f"ControlNet weights lack {key}; cannot derive a config", code="corrupt", path=path
            )
        return tuple(weights[key].shape)

    context = next(
        (int(v.shape[1]) for k, v in weights.items() if k.endswith("attn2.to_k.weight")), None
    )
    if unet_config is None:
        family = next((f for f, dim in CONTEXT_DIM.items() if dim == context), None)
        if family is None:
            raise CheckpointError(
                f"ControlNet cross-attention width {context} names no known family; pass unet_config",
                code="unknown_family",
                path=path,
            )
        unet_config = shipped_config(family)["unet"]
    accepted = set(inspect.signature(DiffusersControlNet.__init__).parameters) - {"self"}
    config = {k: v for k, v in unet_config.items() if k in accepted}

    blocks = sorted({int(k.split(".")[1]) for k in weights if k.startswith("down_blocks.")})
    layers = len({k.split(".")[3] for k in weights if k.startswith("down_blocks.0.resnets.")})
    with_attention = [
        any(k.startswith(f"down_blocks.{b}.attentions.") for k in weights) for b in blocks
    ]
    depth = [
        len(
            {
                k.split(".")[5]
                for k in weights
                if k.startswith(f"down_blocks.{b}.attentions.0.transformer_blocks.")
            }
        )
        or 1
        for b in blocks
    ]
    cond_blocks = len(
        {k.split(".")[2] for k in weights if k.startswith("controlnet_cond_embedding.blocks.")}
    )
    embedding = [shape("controlnet_cond_embedding.conv_in.weight")[0]] + [
        shape(f"controlnet_cond_embedding.blocks.{i}.weight")[0] for i in range(1, cond_blocks, 2)
    ]
    attention_key = next((k for k in weights if k.endswith("attentions.0.proj_in.weight")), None)
    config.update(
        in_channels=shape("conv_in.weight")[1],
        conditioning_channels=shape("controlnet_cond_embedding.conv_in.weight")[1],
        block_out_channels=[shape(f"down_blocks.{b}.resnets.0.conv2.weight")[0] for b in blocks],
        layers_per_block=layers,
        down_block_types=["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in with_attention],
        transformer_layers_per_block=depth,
        conditioning_embedding_out_channels=embedding,
        use_linear_projection=bool(attention_key and len(weights[attention_key].shape) == 2),
    )
    if context is not None:
        config["cross_attention_dim"] = context
    if "add_embedding.linear_1.weight" in weights:
        config["addition_embed_type"] = "text_time"
        config["projection_class_embeddings_input_dim"] = shape("add_embedding.linear_1.weight")[1]
    heads = config.get("attention_head_dim")
    if isinstance(heads, (list, tuple)) and len(heads) != len(blocks):
        raise CheckpointError(
            f"the ControlNet has {len(blocks)} blocks but the UNet config gives {len(heads)} head "
            "sizes; pass a matching unet_config or config",
            code="bad_config",
            path=path,
        )
    return config
