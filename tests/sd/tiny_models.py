"""Tiny seeded SD1 models written in the real on-disk layouts, for tests, the demo and benchmarks.

`build_tiny_models(root)` lays out a ComfyUI-style models folder:

    checkpoints/tiny-sd1.safetensors         original single file (LDM keys), configs in metadata
    checkpoints/tiny-sd1-diffusers/          diffusers pipeline folder
    vae/tiny-vae.safetensors                 standalone VAE, bare LDM keys
    controlnet/tiny-controlnet.safetensors   original ControlNet layout (control_model.*)
    controlnet/tiny-controlnet-diffusers.safetensors   diffusers ControlNet keys
    loras/tiny-lora-kohya.safetensors        kohya keys (lora_unet_*, lora_te_*, .alpha)
    loras/tiny-lora-diffusers.safetensors    diffusers/PEFT keys (unet.*.lora_A/lora_B)

The tiny models cannot fit the shipped SD1 configs, so every single file carries its diffusers
configs as JSON in the safetensors metadata key "latentgraph.configs"; the loader prefers those over
the shipped ones, which is how tests drive the real loading code. The diffusers→LDM key mapping below
is written independently of diffusers' converters, so a round trip through the loader checks them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

METADATA_CONFIGS = "latentgraph.configs"

TINY_UNET: dict[str, Any] = {
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (32, 64),
    "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 32,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}
TINY_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 1,
    "block_out_channels": (32, 32, 64, 64),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "norm_num_groups": 32,
    "sample_size": 64,
    "scaling_factor": 0.18215,
}
TINY_CLIP: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_attention_heads": 4,
    "num_hidden_layers": 5,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 32,
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 49407,
}
SD1_SCHEDULER: dict[str, Any] = {
    "_class_name": "EulerDiscreteScheduler",
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "timestep_spacing": "leading",
}
CONTROLNET_EMBEDDING = (16, 32, 32, 32)
LORA_RANK = 4
LORA_ALPHA = 2.0

# Modules the LoRA files patch, by diffusers module name.
KOHYA_UNET_TARGETS = (
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
    "down_blocks.0.attentions.0.proj_in",  # a 1x1 convolution in SD1
    "down_blocks.0.resnets.0.conv1",  # a 3x3 convolution (LoCon style)
)
KOHYA_TEXT_TARGETS = ("encoder.layers.0.self_attn.q_proj", "encoder.layers.1.mlp.fc1")
DIFFUSERS_UNET_TARGETS = (
    "down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k",
    "up_blocks.1.attentions.0.transformer_blocks.0.ff.net.2",
)
DIFFUSERS_TEXT_TARGETS = ("encoder.layers.2.self_attn.v_proj",)


@dataclass(frozen=True)
class TinyModels:
    """Paths of the tiny model files and the in-memory diffusers/transformers modules they hold."""

    models_dir: Path
    checkpoint: Path
    diffusers_dir: Path
    vae_file: Path
    controlnet_file: Path
    controlnet_diffusers_file: Path
    lora_kohya: Path
    lora_diffusers: Path
    configs: dict[str, Any]
    unet: Any  # diffusers.UNet2DConditionModel
    vae: Any  # diffusers.AutoencoderKL
    text_encoder: Any  # transformers.CLIPTextModel
    controlnet: Any  # diffusers.ControlNetModel


def build_tiny_models(root: Path, seed: int = 0) -> TinyModels:
    """Build the tiny seeded models and write them under `root` as a models folder (about 0.5 s)."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = _perturbed(UNet2DConditionModel(**TINY_UNET), seed + 1)
    vae = _perturbed(AutoencoderKL(**TINY_VAE), seed + 2)
    text_encoder = _perturbed(CLIPTextModel(CLIPTextConfig(**TINY_CLIP)), seed + 3)
    controlnet = _perturbed(
        ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=CONTROLNET_EMBEDDING),
        seed + 4,
    )
    configs = {
        "family": "sd1",
        "prediction_type": "epsilon",
        "unet": _public(unet.config),
        "vae": _public(vae.config),
        "text_encoder": text_encoder.config.to_dict(),
        "scheduler": _scheduler("epsilon"),
        "controlnet": _public(controlnet.config),
    }
    metadata = {METADATA_CONFIGS: json.dumps(configs)}

    dirs = {name: root / name for name in ("checkpoints", "vae", "loras", "controlnet")}
    for folder in dirs.values():
        folder.mkdir(parents=True, exist_ok=True)

    checkpoint = dirs["checkpoints"] / "tiny-sd1.safetensors"
    single_file = {
        **unet_to_ldm(unet.state_dict(), configs["unet"]),
        **vae_to_ldm(vae.state_dict(), configs["vae"]),
        **clip_to_ldm(text_encoder.state_dict()),
    }
    save_file(_contiguous(single_file), checkpoint, metadata=metadata)

    diffusers_dir = dirs["checkpoints"] / "tiny-sd1-diffusers"
    _write_diffusers_folder(diffusers_dir, unet, vae, text_encoder)

    vae_file = dirs["vae"] / "tiny-vae.safetensors"
    vae_only = {
        k.removeprefix("first_stage_model."): v
        for k, v in vae_to_ldm(vae.state_dict(), configs["vae"]).items()
    }
    save_file(
        _contiguous(vae_only),
        vae_file,
        metadata={METADATA_CONFIGS: json.dumps({"vae": configs["vae"]})},
    )

    cn_metadata = {METADATA_CONFIGS: json.dumps({"controlnet": configs["controlnet"]})}
    controlnet_file = dirs["controlnet"] / "tiny-controlnet.safetensors"
    save_file(
        _contiguous(controlnet_to_ldm(controlnet.state_dict(), configs["unet"])),
        controlnet_file,
        metadata=cn_metadata,
    )
    controlnet_diffusers_file = dirs["controlnet"] / "tiny-controlnet-diffusers.safetensors"
    save_file(_contiguous(controlnet.state_dict()), controlnet_diffusers_file, metadata=cn_metadata)

    lora_kohya = dirs["loras"] / "tiny-lora-kohya.safetensors"
    save_file(_kohya_lora(unet, text_encoder, seed + 5), lora_kohya)
    lora_diffusers = dirs["loras"] / "tiny-lora-diffusers.safetensors"
    save_file(_diffusers_lora(unet, text_encoder, seed + 6), lora_diffusers)

    return TinyModels(
        models_dir=root,
        checkpoint=checkpoint,
        diffusers_dir=diffusers_dir,
        vae_file=vae_file,
        controlnet_file=controlnet_file,
        controlnet_diffusers_file=controlnet_diffusers_file,
        lora_kohya=lora_kohya,
        lora_diffusers=lora_diffusers,
        configs=configs,
        unet=unet.eval(),
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        controlnet=controlnet.eval(),
    )


@dataclass(frozen=True)
class TinyFamilyModel:
    """A tiny SD2 or SDXL single file (LDM keys, configs in metadata) and the modules it holds."""

    path: Path
    configs: dict[str, Any]
    unet: Any
    vae: Any
    text_encoder: Any
    text_encoder_2: Any | None = None


TINY_OPEN_CLIP: dict[str, Any] = {**TINY_CLIP, "hidden_act": "gelu", "pad_token_id": 0}


def build_tiny_sdxl(root: Path, seed: int = 0) -> TinyFamilyModel:
    """A tiny SDXL base: two text encoders (CLIP-L and OpenCLIP-G layouts) and a text_time UNet."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    unet_config = {
        **TINY_UNET,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
        "transformer_layers_per_block": (1, 2),
        "cross_attention_dim": 64,  # CLIP-L 32 + OpenCLIP-G 32
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 8,
        "projection_class_embeddings_input_dim": 6 * 8 + 32,  # six size/crop numbers + pooled
    }
    unet = _perturbed(UNet2DConditionModel(**unet_config), seed + 1)
    vae = _perturbed(AutoencoderKL(**{**TINY_VAE, "scaling_factor": 0.13025}), seed + 2)
    text_encoder = _perturbed(CLIPTextModel(CLIPTextConfig(**TINY_CLIP)), seed + 3)
    text_encoder_2 = _perturbed(
        CLIPTextModelWithProjection(CLIPTextConfig(**TINY_OPEN_CLIP)), seed + 4
    )
    configs = {
        "family": "sdxl",
        "prediction_type": "epsilon",
        "unet": _public(unet.config),
        "vae": _public(vae.config),
        "text_encoder": text_encoder.config.to_dict(),
        "text_encoder_2": text_encoder_2.config.to_dict(),
        "scheduler": _scheduler("epsilon"),
    }
    single_file = {
        **unet_to_ldm(unet.state_dict(), configs["unet"]),
        **vae_to_ldm(vae.state_dict(), configs["vae"]),
        **clip_to_ldm(text_encoder.state_dict(), "conditioner.embedders.0.transformer."),
        **open_clip_to_ldm(text_encoder_2.state_dict(), "conditioner.embedders.1.model."),
    }
    root.mkdir(parents=True, exist_ok=True)
    path = root / "tiny-sdxl.safetensors"
    save_file(_contiguous(single_file), path, metadata={METADATA_CONFIGS: json.dumps(configs)})
    return TinyFamilyModel(
        path, configs, unet.eval(), vae.eval(), text_encoder.eval(), text_encoder_2.eval()
    )


def build_tiny_sd2(root: Path, seed: int = 0) -> TinyFamilyModel:
    """A tiny SD2 (v-prediction): an OpenCLIP-H-layout text encoder and a linear-projection UNet."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = _perturbed(
        UNet2DConditionModel(**{**TINY_UNET, "use_linear_projection": True}), seed + 1
    )
    vae = _perturbed(AutoencoderKL(**TINY_VAE), seed + 2)
    text_encoder = _perturbed(CLIPTextModel(CLIPTextConfig(**TINY_OPEN_CLIP)), seed + 3)
    configs = {
        "family": "sd2",
        "prediction_type": "v_prediction",
        "unet": _public(unet.config),
        "vae": _public(vae.config),
        "text_encoder": text_encoder.config.to_dict(),
        "scheduler": _scheduler("v_prediction"),
    }
    # Real SD2 files keep OpenCLIP's projection, which SD2 does not use; the converter drops it.
    width, dim = TINY_OPEN_CLIP["hidden_size"], TINY_OPEN_CLIP["projection_dim"]
    single_file = {
        **unet_to_ldm(unet.state_dict(), configs["unet"]),
        **vae_to_ldm(vae.state_dict(), configs["vae"]),
        **open_clip_to_ldm(text_encoder.state_dict(), "cond_stage_model.model."),
        "cond_stage_model.model.text_projection": torch.randn(width, dim),
    }
    root.mkdir(parents=True, exist_ok=True)
    path = root / "tiny-sd2.safetensors"
    save_file(_contiguous(single_file), path, metadata={METADATA_CONFIGS: json.dumps(configs)})
    return TinyFamilyModel(path, configs, unet.eval(), vae.eval(), text_encoder.eval())


def _scheduler(prediction_type: str) -> dict[str, Any]:
    public = {k: v for k, v in SD1_SCHEDULER.items() if not k.startswith("_")}
    return {**public, "prediction_type": prediction_type}


def _perturbed(module: Any, seed: int) -> Any:
    """Add seeded noise to every parameter, so no tensor is all zeros and no two are equal."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, parameter in sorted(module.named_parameters()):
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.02)
    return module.requires_grad_(False)


def _public(config: Any) -> dict[str, Any]:
    return json.loads(json.dumps({k: v for k, v in dict(config).items() if not k.startswith("_")}))


def _contiguous(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous() for k, v in state_dict.items()}


def _write_diffusers_folder(folder: Path, unet: Any, vae: Any, text_encoder: Any) -> None:
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    text_encoder.save_pretrained(folder / "text_encoder")
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(SD1_SCHEDULER, indent=2))
    model_index = {
        "_class_name": "StableDiffusionPipeline",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "tokenizer": [None, None],
        "safety_checker": [None, None],
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
    }
    (folder / "model_index.json").write_text(json.dumps(model_index, indent=2))


# --- diffusers → original (LDM) keys -------------------------------------------------------------

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


# --- LoRA files ----------------------------------------------------------------------------------


def _lora_pair(
    weight: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(down, up) shaped for `weight`: linear, or convolution with the kernel on `down` (LoCon)."""
    out_features, in_features = weight.shape[:2]
    kernel = tuple(weight.shape[2:])
    down = torch.randn((LORA_RANK, in_features, *kernel), generator=generator) * 0.1
    up = torch.randn((out_features, LORA_RANK, *((1,) * len(kernel))), generator=generator) * 0.1
    return down, up


def _module_weight(model: Any, name: str) -> torch.Tensor:
    return model.get_submodule(name).weight


def _kohya_lora(unet: Any, text_encoder: Any, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    out = {}
    targets = [("lora_unet_", unet, name) for name in KOHYA_UNET_TARGETS]
    # kohya names text-encoder modules from the transformers 4 layout, with `text_model.`.
    targets += [("lora_te_text_model_", text_encoder, name) for name in KOHYA_TEXT_TARGETS]
    for prefix, model, name in targets:
        down, up = _lora_pair(_module_weight(model, name), generator)
        key = prefix + name.replace(".", "_")
        out[f"{key}.lora_down.weight"] = down
        out[f"{key}.lora_up.weight"] = up
        out[f"{key}.alpha"] = torch.tensor(LORA_ALPHA)
    return out


def _diffusers_lora(unet: Any, text_encoder: Any, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    out = {}
    targets = [("unet.", unet, name) for name in DIFFUSERS_UNET_TARGETS]
    targets += [("text_encoder.text_model.", text_encoder, name) for name in DIFFUSERS_TEXT_TARGETS]
    for prefix, model, name in targets:
        down, up = _lora_pair(_module_weight(model, name), generator)
        out[f"{prefix}{name}.lora_A.weight"] = down
        out[f"{prefix}{name}.lora_B.weight"] = up
    return out
