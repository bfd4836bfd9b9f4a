"""LoRA merging: exact deltas, strength, both key styles, untouched inputs and clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from nodes.sd.loading.weight_files import CheckpointError
from nodes.sd.lora import apply_lora, parse_lora
from nodes.sd.tiny_models import (
    DIFFUSERS_TEXT_TARGETS,
    DIFFUSERS_UNET_TARGETS,
    KOHYA_TEXT_TARGETS,
    KOHYA_UNET_TARGETS,
    LORA_ALPHA,
    LORA_RANK,
    TinyModels,
)
from nodes.sd.tokenizer import clip_tokenizer
from nodes.sd.values import ClipModel, UNetModel


@pytest.fixture
def models(tiny_models: TinyModels) -> tuple[UNetModel, ClipModel]:
    unet = UNetModel(unet=tiny_models.unet, family="sd1")
    clip = ClipModel(
        tokenizer=clip_tokenizer(), text_encoder=tiny_models.text_encoder, family="sd1"
    )
    return unet, clip


def snapshot(module: Any) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def expected_delta(
    down: torch.Tensor, up: torch.Tensor, weight: torch.Tensor, scale: float
) -> torch.Tensor:
    return (up.flatten(1) @ down.flatten(1)).reshape(weight.shape) * scale


def check_merge(
    before: dict[str, torch.Tensor],
    after: Any,
    patches: dict[str, tuple[torch.Tensor, torch.Tensor]],
    strength: float,
    scale: float,
) -> None:
    """Targeted weights moved by strength*scale*up@down; every other tensor is bit-identical."""
    state = after.state_dict()
    assert state.keys() == before.keys()
    for module, (down, up) in patches.items():
        key = f"{module}.weight"
        delta = expected_delta(down, up, before[key], scale)
        torch.testing.assert_close(state[key], before[key] + strength * delta)
        assert not torch.equal(state[key], before[key])
    targeted = {f"{m}.weight" for m in patches}
    untouched = [k for k in state if k not in targeted and not torch.equal(state[k], before[k])]
    assert not untouched, untouched


def kohya_patches(
    path: Path, prefix: str, targets: tuple[str, ...], text: bool = False
) -> dict[str, Any]:
    state = load_file(path)
    out = {}
    for module in targets:
        key = prefix + ("text_model_" if text else "") + module.replace(".", "_")
        out[module] = (state[f"{key}.lora_down.weight"], state[f"{key}.lora_up.weight"])
    return out


@pytest.mark.parametrize("strength", [1.0, 0.7, -0.5])
def test_kohya_lora_changes_exactly_the_targets(
    tiny_models: TinyModels, models: tuple[UNetModel, ClipModel], strength: float
) -> None:
    unet, clip = models
    unet_before, clip_before = snapshot(unet.unet), snapshot(clip.text_encoder)
    new_unet, new_clip = apply_lora(unet, clip, tiny_models.lora_kohya, strength, strength)
    assert new_unet is not None and new_clip is not None
    scale = LORA_ALPHA / LORA_RANK
    check_merge(
        unet_before,
        new_unet.unet,
        kohya_patches(tiny_models.lora_kohya, "lora_unet_", KOHYA_UNET_TARGETS),
        strength,
        scale,
    )
    text = kohya_patches(tiny_models.lora_kohya, "lora_te_", KOHYA_TEXT_TARGETS, text=True)
    check_merge(clip_before, new_clip.text_encoder, text, strength, scale)
    assert new_unet.loras == (("tiny-lora-kohya", strength),)
    assert new_clip.loras == (("tiny-lora-kohya", strength),)
    # The inputs, which other cached nodes may hold, are untouched.
    assert all(torch.equal(v, unet_before[k]) for k, v in unet.unet.state_dict().items())
    assert all(torch.equal(v, clip_before[k]) for k, v in clip.text_encoder.state_dict().items())


def test_diffusers_lora_without_alpha_scales_by_one(
    tiny_models: TinyModels, models: tuple[UNetModel, ClipModel]
) -> None:
    unet, clip = models
    unet_before, clip_before = snapshot(unet.unet), snapshot(clip.text_encoder)
    new_unet, new_clip = apply_lora(unet, clip, tiny_models.lora_diffusers, 0.8, 1.2, name="style")
    assert new_unet is not None and new_clip is not None
    state = load_file(tiny_models.lora_diffusers)
    unet_patches = {
        m: (state[f"unet.{m}.lora_A.weight"], state[f"unet.{m}.lora_B.weight"])
        for m in DIFFUSERS_UNET_TARGETS
    }
    text_patches = {
        m: (
            state[f"text_encoder.text_model.{m}.lora_A.weight"],
            state[f"text_encoder.text_model.{m}.lora_B.weight"],
        )
        for m in DIFFUSERS_TEXT_TARGETS
    }
    check_merge(unet_before, new_unet.unet, unet_patches, 0.8, 1.0)
    check_merge(clip_before, new_clip.text_encoder, text_patches, 1.2, 1.0)
    assert new_unet.loras == (("style", 0.8),)


def test_strength_zero_leaves_the_models_as_they_are(
    tiny_models: TinyModels, models: tuple[UNetModel, ClipModel]
) -> None:
    unet, clip = models
    new_unet, new_clip = apply_lora(unet, clip, tiny_models.lora_kohya, 0.0, 0.0)
    assert new_unet is unet and new_clip is clip
    only_clip = apply_lora(unet, clip, tiny_models.lora_kohya, 0.0, 1.0)
    assert only_clip[0] is unet and only_clip[1] is not clip


def test_patched_copy_shares_untouched_tensors(
    tiny_models: TinyModels, models: tuple[UNetModel, ClipModel]
) -> None:
    unet, _ = models
    new_unet, _ = apply_lora(unet, None, tiny_models.lora_kohya, 1.0, 1.0)
    assert new_unet is not None and new_unet.unet is not unet.unet
    assert new_unet.unet.conv_out.weight is unet.unet.conv_out.weight
    target = KOHYA_UNET_TARGETS[0]
    assert new_unet.unet.get_submodule(target).weight is not unet.unet.get_submodule(target).weight


def test_missing_models_skip_their_layers(
    tiny_models: TinyModels, models: tuple[UNetModel, ClipModel]
) -> None:
    unet, clip = models
    assert apply_lora(None, clip, tiny_models.lora_kohya)[0] is None
    new_unet, new_clip = apply_lora(unet, None, tiny_models.lora_kohya)
    assert new_clip is None and new_unet is not unet


def test_kohya_original_unet_names(models: tuple[UNetModel, ClipModel], tmp_path: Path) -> None:
    """kohya writes SDXL LoRAs with the original UNet's module names; they map onto diffusers'."""
    unet, _ = models
    names = {
        "input_blocks_1_1_proj_in": "down_blocks.0.attentions.0.proj_in",
        "input_blocks_3_0_op": "down_blocks.0.downsamplers.0.conv",
        "input_blocks_4_0_skip_connection": "down_blocks.1.resnets.0.conv_shortcut",
        "middle_block_1_transformer_blocks_0_attn2_to_k": "mid_block.attentions.0.transformer_blocks.0.attn2.to_k",
        "middle_block_2_out_layers_3": "mid_block.resnets.1.conv2",
        "output_blocks_2_1_conv": "up_blocks.0.upsamplers.0.conv",
        "output_blocks_3_0_in_layers_2": "up_blocks.1.resnets.0.conv1",
        "output_blocks_5_1_proj_out": "up_blocks.1.attentions.2.proj_out",
        "time_embed_0": "time_embedding.linear_1",
        "out_2": "conv_out",
    }
    generator = torch.Generator().manual_seed(3)
    state, patches = {}, {}
    for original, module in names.items():
        weight = unet.unet.get_submodule(module).weight
        down = torch.randn((2, weight.shape[1], *weight.shape[2:]), generator=generator)
        up = torch.randn((weight.shape[0], 2, *([1] * (weight.ndim - 2))), generator=generator)
        state[f"lora_unet_{original}.lora_down.weight"] = down
        state[f"lora_unet_{original}.lora_up.weight"] = up
        state[f"lora_unet_{original}.alpha"] = torch.tensor(1.0)
        patches[module] = (down, up)
    path = tmp_path / "sgm.safetensors"
    save_file(state, path)
    before = snapshot(unet.unet)
    new_unet, _ = apply_lora(unet, None, path, 0.5)
    assert new_unet is not None
    check_merge(before, new_unet.unet, patches, 0.5, 0.5)


def write_lora(tmp_path: Path, state: dict[str, torch.Tensor]) -> Path:
    path = tmp_path / "bad.safetensors"
    save_file(state, path)
    return path


def test_unknown_keys_are_listed(models: tuple[UNetModel, ClipModel], tmp_path: Path) -> None:
    unet, clip = models
    path = write_lora(
        tmp_path,
        {
            "lora_unet_conv_in.lora_down.weight": torch.zeros(2, 4, 3, 3),
            "lora_unet_conv_in.lora_up.weight": torch.zeros(32, 2, 1, 1),
            "lora_unet_conv_in.hada_w1_a": torch.zeros(2),
            "something.else": torch.zeros(1),
        },
    )
    with pytest.raises(CheckpointError) as caught:
        apply_lora(unet, clip, path)
    error = caught.value
    assert error.code == "lora_unknown_keys"
    assert error.details["unknown"] == ["lora_unet_conv_in.hada_w1_a", "something.else"]
    assert "2 keys in no known LoRA style" in str(error) and "something.else" in str(error)


def test_unmatched_layers_are_listed(models: tuple[UNetModel, ClipModel], tmp_path: Path) -> None:
    unet, clip = models
    path = write_lora(
        tmp_path,
        {
            "lora_unet_down_blocks_9_nothing.lora_down.weight": torch.zeros(2, 4),
            "lora_unet_down_blocks_9_nothing.lora_up.weight": torch.zeros(4, 2),
        },
    )
    with pytest.raises(CheckpointError) as caught:
        apply_lora(unet, clip, path)
    assert caught.value.code == "lora_unmatched"
    assert caught.value.details["unmatched"] == ["down_blocks_9_nothing"]
    assert "match no layer of the UNet2DConditionModel (down_blocks_9_nothing)" in str(caught.value)


def test_half_a_layer_and_wrong_shapes_and_wrong_family(
    models: tuple[UNetModel, ClipModel], tmp_path: Path
) -> None:
    unet, clip = models
    half = write_lora(tmp_path, {"lora_unet_conv_in.lora_down.weight": torch.zeros(2, 4, 3, 3)})
    with pytest.raises(CheckpointError, match="lack an up or down weight"):
        apply_lora(unet, clip, half)
    wrong = write_lora(
        tmp_path,
        {
            "unet.conv_in.lora_A.weight": torch.zeros(2, 5, 3, 3),
            "unet.conv_in.lora_B.weight": torch.zeros(32, 2, 1, 1),
        },
    )
    with pytest.raises(CheckpointError, match="does not fit the weight"):
        apply_lora(unet, clip, wrong)
    te2 = write_lora(
        tmp_path,
        {
            "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": torch.zeros(2, 32),
            "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": torch.zeros(37, 2),
        },
    )
    with pytest.raises(CheckpointError, match="patches text_encoder_2 but this sd1 model has none"):
        apply_lora(unet, clip, te2)


def test_parse_lora_reads_alpha_and_rank(tiny_models: TinyModels) -> None:
    layers = parse_lora(load_file(tiny_models.lora_kohya))
    assert {layer.component for layer in layers} == {"unet", "text_encoder"}
    assert all(layer.scale == LORA_ALPHA / LORA_RANK for layer in layers)
    assert all(
        layer.alpha is None and layer.scale == 1.0
        for layer in parse_lora(load_file(tiny_models.lora_diffusers))
    )


def _diffusers_pipeline(tiny_models: TinyModels) -> Any:
    """A diffusers SD pipeline on copies of the tiny UNet and text encoder (nothing from a hub)."""
    import copy

    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=tiny_models.vae,
        text_encoder=copy.deepcopy(tiny_models.text_encoder),
        tokenizer=clip_tokenizer(),
        unet=copy.deepcopy(tiny_models.unet),
        scheduler=EulerDiscreteScheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_merge_matches_diffusers_load_lora_weights_and_fuse_lora(
    tiny_models: TinyModels, models: tuple[UNetModel, ClipModel], strength: float
) -> None:
    """Against diffusers (through peft): the same file fused at the same scale gives the same
    weights, in the UNet and the text encoder."""
    pipe = _diffusers_pipeline(tiny_models)
    pipe.load_lora_weights(load_file(tiny_models.lora_diffusers))
    pipe.fuse_lora(components=["unet", "text_encoder"], lora_scale=strength)
    pipe.unload_lora_weights()  # keeps the fused weights, drops the peft layers
    unet, clip = apply_lora(*models, tiny_models.lora_diffusers, strength, strength, name="x")
    assert unet is not None and clip is not None
    theirs = {**_prefixed("unet.", pipe.unet), **_prefixed("te.", pipe.text_encoder)}
    ours = {**_prefixed("unet.", unet.unet), **_prefixed("te.", clip.text_encoder)}
    assert theirs.keys() == ours.keys()
    base = {**_prefixed("unet.", tiny_models.unet), **_prefixed("te.", tiny_models.text_encoder)}
    changed = [k for k in ours if not torch.equal(ours[k], base[k])]
    assert len(changed) == len(DIFFUSERS_UNET_TARGETS) + len(DIFFUSERS_TEXT_TARGETS)
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-5, atol=1e-6, msg=key)


def _prefixed(prefix: str, module: Any) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in module.state_dict().items()}
