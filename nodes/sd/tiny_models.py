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
the shipped ones, which is how tests drive the real loading code. The diffusers→LDM key mapping is
in `ldm_keys.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nodes.sd.ldm_keys import (
    clip_to_ldm,
    controlnet_to_ldm,
    open_clip_to_ldm,
    unet_to_ldm,
    vae_to_ldm,
)
from nodes.sd.loading.model_configs import METADATA_CONFIGS
from nodes.sd.offline import stay_offline

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
    stay_offline()
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
    stay_offline()
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
    stay_offline()
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
    public: dict[str, Any] = json.loads(
        json.dumps({k: v for k, v in dict(config).items() if not k.startswith("_")})
    )
    return public


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
    weight: torch.Tensor = model.get_submodule(name).weight
    return weight


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
