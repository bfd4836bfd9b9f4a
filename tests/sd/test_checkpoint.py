"""Loading checkpoints, VAEs and ControlNets: exact round trips, family detection and clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from nodes.sd.loading.controlnet_file import controlnet_config_from_weights, load_controlnet
from nodes.sd.loading.detection import detect_family, detect_prediction_type
from nodes.sd.loading.model_configs import METADATA_CONFIGS, shipped_config
from nodes.sd.loading.single_file import load_checkpoint
from nodes.sd.loading.vae_file import load_vae
from nodes.sd.loading.weight_files import CheckpointError, read_state_dict
from nodes.sd.text_encoder import encode
from nodes.sd.tiny_models import TinyFamilyModel, TinyModels
from nodes.sd.tokenizer import tokenize


def assert_same_weights(loaded: Any, reference: Any) -> None:
    ours, theirs = loaded.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys()
    different = [k for k in ours if not torch.equal(ours[k], theirs[k])]
    assert not different, different


def ldm_and_metadata(tiny: TinyModels) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(tiny.checkpoint), "pt") as handle:
        metadata = handle.metadata()
    return load_file(tiny.checkpoint), metadata


def load_error(path: Path, **kwargs: Any) -> CheckpointError:
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path, device="cpu", **kwargs)
    return caught.value


# --- round trips ---------------------------------------------------------------------------------


def test_single_file_loads_identical_to_the_diffusers_modules(tiny_models: TinyModels) -> None:
    checkpoint = load_checkpoint(tiny_models.checkpoint, device="cpu")
    assert_same_weights(checkpoint.unet.unet, tiny_models.unet)
    assert_same_weights(checkpoint.vae.vae, tiny_models.vae)
    assert_same_weights(checkpoint.clip.text_encoder, tiny_models.text_encoder)
    assert checkpoint.unet.family == checkpoint.clip.family == "sd1"
    assert checkpoint.unet.prediction_type == "epsilon"
    assert checkpoint.unet.schedule.beta_end == 0.012
    assert checkpoint.vae.scaling_factor == 0.18215
    assert checkpoint.clip.tokenizer("a cat")["input_ids"] == [49406, 320, 2368, 49407]
    assert checkpoint.clip.text_encoder_2 is None
    assert not any(p.requires_grad for p in checkpoint.unet.unet.parameters())


def test_diffusers_folder_loads_identical(tiny_models: TinyModels) -> None:
    checkpoint = load_checkpoint(tiny_models.diffusers_dir, device="cpu")
    assert_same_weights(checkpoint.unet.unet, tiny_models.unet)
    assert_same_weights(checkpoint.vae.vae, tiny_models.vae)
    assert_same_weights(checkpoint.clip.text_encoder, tiny_models.text_encoder)
    assert checkpoint.unet.family == "sd1" and checkpoint.unet.prediction_type == "epsilon"


def test_dtype_is_overridable(tiny_models: TinyModels) -> None:
    checkpoint = load_checkpoint(tiny_models.checkpoint, device="cpu", dtype="fp16")
    assert {p.dtype for p in checkpoint.unet.unet.parameters()} == {torch.float16}
    assert {p.dtype for p in checkpoint.clip.text_encoder.parameters()} == {torch.float16}


def test_legacy_ckpt_with_nested_state_dict_and_config_argument(
    tiny_models: TinyModels, tmp_path: Path
) -> None:
    ldm, metadata = ldm_and_metadata(tiny_models)
    ckpt = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": ldm, "global_step": 7, "epoch": 1}, ckpt)
    with pytest.raises(CheckpointError, match="do not fit its config"):
        load_checkpoint(ckpt, device="cpu")  # no metadata: the shipped SD1 config is far too big
    config = json.loads(metadata[METADATA_CONFIGS])
    checkpoint = load_checkpoint(ckpt, device="cpu", config=config)
    assert_same_weights(checkpoint.unet.unet, tiny_models.unet)
    config_file = tmp_path / "tiny.json"
    config_file.write_text(json.dumps(config))
    assert_same_weights(
        load_checkpoint(ckpt, config=config_file, device="cpu").vae.vae, tiny_models.vae
    )


def test_harmless_extras_and_old_clip_key_style_load(
    tiny_models: TinyModels, tmp_path: Path
) -> None:
    ldm, metadata = ldm_and_metadata(tiny_models)
    old_style = {k.replace("transformer.text_model.", "transformer."): v for k, v in ldm.items()}
    old_style["cond_stage_model.transformer.embeddings.position_ids"] = torch.arange(77)[None]
    old_style["model_ema.decay"] = torch.tensor(0.9999)
    old_style["alphas_cumprod"] = torch.ones(1000)
    path = tmp_path / "old.safetensors"
    save_file(old_style, path, metadata=metadata)
    checkpoint = load_checkpoint(path, device="cpu")
    assert_same_weights(checkpoint.clip.text_encoder, tiny_models.text_encoder)


def test_vae_files_in_every_layout(tiny_models: TinyModels, tmp_path: Path) -> None:
    assert_same_weights(load_vae(tiny_models.vae_file, device="cpu").vae, tiny_models.vae)
    config = {"vae": tiny_models.configs["vae"]}
    full = load_vae(tiny_models.checkpoint, device="cpu")  # the VAE inside a full checkpoint
    assert_same_weights(full.vae, tiny_models.vae)
    diffusers_keys = tmp_path / "vae-diffusers.safetensors"
    save_file(tiny_models.vae.state_dict(), diffusers_keys)
    loaded = load_vae(diffusers_keys, config=config, family="sdxl", device="cpu")
    assert_same_weights(loaded.vae, tiny_models.vae)
    assert loaded.scaling_factor == 0.18215  # the config's value wins over the family's
    assert load_vae(tiny_models.diffusers_dir / "vae", device="cpu").scaling_factor == 0.18215


def test_vae_scaling_factor_rule(tiny_models: TinyModels, tmp_path: Path) -> None:
    # SD1 and SDXL VAEs have the same shapes: the config decides, else the family, else the name.
    shape_only = {k: v for k, v in tiny_models.configs["vae"].items() if k != "scaling_factor"}
    weights = load_file(tiny_models.vae_file)
    for name, family, expected in [
        ("vae.safetensors", None, 0.18215),
        ("sdxl_vae.safetensors", None, 0.13025),
        ("sdxl_vae.safetensors", "sd1", 0.18215),
        ("vae.safetensors", "sdxl", 0.13025),
    ]:
        path = tmp_path / name
        save_file(weights, path)
        loaded = load_vae(path, family=family, config={"vae": shape_only}, device="cpu")
        assert loaded.scaling_factor == expected, (name, family)
        assert loaded.vae.config.scaling_factor == expected
        assert_same_weights(loaded.vae, tiny_models.vae)
    with pytest.raises(CheckpointError, match="VAE weights do not fit"):
        load_vae(tmp_path / "vae.safetensors", device="cpu")  # shipped SD1 config: full size


def test_controlnet_in_both_layouts(tiny_models: TinyModels) -> None:
    original = load_controlnet(tiny_models.controlnet_file, device="cpu")
    assert_same_weights(original.controlnet, tiny_models.controlnet)
    assert original.name == "tiny-controlnet.safetensors"
    diffusers = load_controlnet(tiny_models.controlnet_diffusers_file, device="cpu")
    assert_same_weights(diffusers.controlnet, tiny_models.controlnet)


def test_controlnet_config_is_derived_from_shapes(tiny_models: TinyModels, tmp_path: Path) -> None:
    bare = tmp_path / "cn.safetensors"
    save_file(load_file(tiny_models.controlnet_file), bare)  # drops the config metadata
    loaded = load_controlnet(bare, unet_config=tiny_models.configs["unet"], device="cpu")
    assert_same_weights(loaded.controlnet, tiny_models.controlnet)
    derived = controlnet_config_from_weights(
        tiny_models.controlnet.state_dict(), tiny_models.configs["unet"]
    )
    for key in (
        "in_channels",
        "conditioning_channels",
        "block_out_channels",
        "layers_per_block",
        "down_block_types",
        "cross_attention_dim",
        "use_linear_projection",
        "conditioning_embedding_out_channels",
        "attention_head_dim",
    ):
        assert list(json.loads(json.dumps([derived[key]]))) == json.loads(
            json.dumps([tiny_models.configs["controlnet"][key]])
        ), key
    with pytest.raises(CheckpointError, match="names no known family"):
        load_controlnet(bare, device="cpu")  # width 32 names no family and no unet_config given


# --- family detection ----------------------------------------------------------------------------


def sentinels(width: int, *prefixes: str, label_emb: bool = False) -> dict[str, torch.Tensor]:
    state = {
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(
            8, width
        )
    }
    state.update({f"{p}sentinel.weight": torch.zeros(1) for p in prefixes})
    if label_emb:
        state["model.diffusion_model.label_emb.0.0.weight"] = torch.zeros(8, 2816)
    return state


@pytest.mark.parametrize(
    ("state", "family"),
    [
        (sentinels(768, "cond_stage_model.transformer.text_model."), "sd1"),
        (sentinels(32, "cond_stage_model.transformer.text_model."), "sd1"),
        (sentinels(768), "sd1"),
        (sentinels(1024, "cond_stage_model.model."), "sd2"),
        (sentinels(1024), "sd2"),
        (
            sentinels(
                2048,
                "conditioner.embedders.0.transformer.text_model.",
                "conditioner.embedders.1.model.",
                label_emb=True,
            ),
            "sdxl",
        ),
        (sentinels(2048, label_emb=True), "sdxl"),
        ({"control_model.time_embed.0.weight": torch.zeros(1)}, "controlnet"),
        ({"controlnet_cond_embedding.conv_in.weight": torch.zeros(1)}, "controlnet"),
        (
            {"input_hint_block.0.weight": torch.zeros(1), "time_embed.0.weight": torch.zeros(1)},
            "controlnet",
        ),
    ],
)
def test_family_detection(state: dict[str, torch.Tensor], family: str) -> None:
    assert detect_family(state) == family


def test_family_detection_refuses_what_it_cannot_name() -> None:
    with pytest.raises(CheckpointError, match="no Stable Diffusion UNet weights") as caught:
        detect_family({"encoder.weight": torch.zeros(1)})
    assert caught.value.code == "not_a_checkpoint"
    with pytest.raises(CheckpointError, match="inconsistent checkpoint") as caught:
        detect_family(sentinels(1024, "cond_stage_model.transformer.text_model."))
    assert caught.value.code == "wrong_family"
    with pytest.raises(CheckpointError, match="refiner"):
        detect_family(sentinels(1280, "conditioner.embedders.0.model."))
    with pytest.raises(CheckpointError, match="match no known family"):
        detect_family(sentinels(32))


def test_prediction_type_rule(tmp_path: Path) -> None:
    plain = tmp_path / "model.safetensors"
    v_bias = {
        "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias": torch.randn(320)
    }
    eps_bias = {
        "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias": torch.randn(320)
        * 0.01
    }
    assert detect_prediction_type(plain, {}, "sd1") == "epsilon"
    assert detect_prediction_type(plain, v_bias, "sd2") == "v_prediction"
    assert detect_prediction_type(plain, eps_bias, "sd2") == "epsilon"
    assert detect_prediction_type(plain, v_bias, "sd2", in_channels=9) == "epsilon"  # inpainting
    assert detect_prediction_type(plain, v_bias, "sd1") == "epsilon"
    assert detect_prediction_type(plain, {"v_pred": torch.zeros(0)}, "sdxl") == "v_prediction"
    assert (
        detect_prediction_type(tmp_path / "noob-vpred-1.0.safetensors", {}, "sdxl")
        == "v_prediction"
    )
    assert detect_prediction_type(tmp_path / "768-v-ema.ckpt", {}, "sd2") == "v_prediction"
    plain.with_suffix(".yaml").write_text('model:\n  params:\n    parameterization: "v"\n')
    assert detect_prediction_type(plain, {}, "sd2") == "v_prediction"


def test_prediction_type_argument_wins(tiny_models: TinyModels) -> None:
    checkpoint = load_checkpoint(
        tiny_models.checkpoint, device="cpu", prediction_type="v_prediction"
    )
    assert checkpoint.unet.prediction_type == "v_prediction"


def test_shipped_configs_cover_the_families() -> None:
    assert shipped_config("sd1")["unet"]["cross_attention_dim"] == 768
    sd2v = shipped_config("sd2-v")
    assert sd2v["prediction_type"] == "v_prediction" and sd2v["unet"]["sample_size"] == 96
    assert sd2v["scheduler"]["prediction_type"] == "v_prediction"
    xl = shipped_config("sdxl")
    assert xl["text_encoder_2"]["hidden_size"] == 1280 and xl["unet"]["cross_attention_dim"] == 2048
    with pytest.raises(ValueError, match="no shipped config"):
        shipped_config("sd3")


# --- errors --------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    error = load_error(tmp_path / "nope.safetensors")
    assert error.code == "not_found" and "does not exist" in str(error)


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(b"this is not a model at all, just some text")
    error = load_error(path)
    assert error.code == "corrupt" and "neither a safetensors file nor a PyTorch checkpoint" in str(
        error
    )


def test_corrupt_safetensors_header(tiny_models: TinyModels, tmp_path: Path) -> None:
    data = bytearray(tiny_models.checkpoint.read_bytes())
    data[9:40] = b"#" * 31  # inside the JSON header
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(bytes(data))
    error = load_error(path)
    assert error.code == "corrupt" and "header is unreadable" in str(error)
    assert error.details["path"] == str(path)


def test_truncated_safetensors(tiny_models: TinyModels, tmp_path: Path) -> None:
    data = tiny_models.checkpoint.read_bytes()
    path = tmp_path / "truncated.safetensors"
    path.write_bytes(data[: len(data) // 2])
    error = load_error(path)
    assert error.code == "truncated"
    assert "truncated.safetensors is truncated" in str(error)
    assert error.details["actual_bytes"] < error.details["expected_bytes"]
    path.write_bytes(data[:100])  # cut inside the header
    assert load_error(path).code == "truncated"


def test_truncated_ckpt(tiny_models: TinyModels, tmp_path: Path) -> None:
    ckpt = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": ldm_and_metadata(tiny_models)[0]}, ckpt)
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    error = load_error(ckpt)
    assert error.code == "corrupt" and "corrupt or truncated" in str(error)


class NotATensor:
    """A pickled object that weights_only loading must refuse."""


def test_pickle_with_code_is_refused(tmp_path: Path) -> None:
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"a": torch.zeros(1)}, "callback": NotATensor()}, ckpt)
    error = load_error(ckpt)
    assert error.code == "unsafe_pickle" and "weights_only=True" in str(error)


def test_controlnet_given_to_the_checkpoint_loader(tiny_models: TinyModels) -> None:
    error = load_error(tiny_models.controlnet_file)
    assert error.code == "wrong_family"
    assert "is a ControlNet, not a Stable Diffusion checkpoint" in str(error)


def test_random_safetensors_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "random.safetensors"
    save_file({"layer.weight": torch.randn(3, 3), "layer.bias": torch.randn(3)}, path)
    error = load_error(path)
    assert error.code == "not_a_checkpoint"
    assert "random.safetensors" in str(error) and "model.diffusion_model." in str(error)
    assert "layer.bias" in str(error)
    with pytest.raises(CheckpointError, match="is not a ControlNet"):
        load_controlnet(path, device="cpu")
    with pytest.raises(CheckpointError, match="has no VAE weights"):
        load_vae(path, device="cpu")


def test_checkpoint_given_to_the_controlnet_loader(tiny_models: TinyModels) -> None:
    with pytest.raises(CheckpointError, match="looks like a full checkpoint"):
        load_controlnet(tiny_models.checkpoint, device="cpu")


def edited(tiny: TinyModels, tmp_path: Path, edit: Any) -> Path:
    ldm, metadata = ldm_and_metadata(tiny)
    edit(ldm)
    path = tmp_path / "edited.safetensors"
    save_file(ldm, path, metadata=metadata)
    return path


def test_missing_key_is_named(tiny_models: TinyModels, tmp_path: Path) -> None:
    path = edited(tiny_models, tmp_path, lambda sd: sd.pop("model.diffusion_model.out.2.bias"))
    error = load_error(path)
    assert error.code == "weights_mismatch" and error.details["component"] == "UNet"
    assert error.details["missing"] == ["conv_out.bias"]
    assert "UNet weights do not fit its config: 1 missing (conv_out.bias)" in str(error)


def test_extra_keys_are_named(tiny_models: TinyModels, tmp_path: Path) -> None:
    def add(sd: dict[str, torch.Tensor]) -> None:
        sd["model.diffusion_model.input_blocks.1.0.extra.weight"] = torch.zeros(2)
        sd["model.diffusion_model.bogus.weight"] = torch.zeros(2)

    error = load_error(edited(tiny_models, tmp_path, add))
    assert error.details["unexpected"] == [
        "down_blocks.0.resnets.0.extra.weight",
        "model.diffusion_model.bogus.weight",
    ]
    assert "2 unexpected" in str(error) and "model.diffusion_model.bogus.weight" in str(error)


def test_mis_shaped_key_is_named(tiny_models: TinyModels, tmp_path: Path) -> None:
    def reshape(sd: dict[str, torch.Tensor]) -> None:
        sd["model.diffusion_model.out.2.bias"] = torch.zeros(5)

    error = load_error(edited(tiny_models, tmp_path, reshape))
    assert error.details["mis_shaped"] == ["conv_out.bias: file (5,) vs model (4,)"]
    assert "1 mis-shaped (conv_out.bias: file (5,) vs model (4,))" in str(error)


def test_text_encoder_and_vae_problems_name_their_component(
    tiny_models: TinyModels, tmp_path: Path
) -> None:
    key = "cond_stage_model.transformer.text_model.final_layer_norm.weight"
    error = load_error(edited(tiny_models, tmp_path, lambda sd: sd.pop(key)))
    assert error.details["component"] == "text encoder (CLIP-L)"
    assert error.details["missing"] == ["final_layer_norm.weight"]
    no_vae = edited(
        tiny_models,
        tmp_path,
        lambda sd: [sd.pop(k) for k in list(sd) if k.startswith("first_stage_model.")],
    )
    error = load_error(no_vae)
    assert error.code == "missing_component" and "has no VAE weights" in str(error)


def test_diffusers_folder_problems(tiny_models: TinyModels, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(tiny_models.diffusers_dir, folder)
    shutil.rmtree(folder / "vae")
    error = load_error(folder)
    assert error.code == "not_a_checkpoint" and "vae/config.json is missing" in str(error)

    shutil.copytree(tiny_models.diffusers_dir / "vae", folder / "vae")
    weights = folder / "text_encoder" / "model.safetensors"
    state = load_file(weights)
    state["extra.weight"] = state.pop("final_layer_norm.weight")
    save_file(state, weights)
    error = load_error(folder)
    assert error.code == "weights_mismatch" and error.details["component"] == "text_encoder"
    assert error.details["missing"] == ["final_layer_norm.weight"]
    assert error.details["unexpected"] == ["extra.weight"]


def test_read_state_dict_reports_metadata(tiny_models: TinyModels) -> None:
    tensors, metadata = read_state_dict(tiny_models.checkpoint)
    assert json.loads(metadata[METADATA_CONFIGS])["family"] == "sd1"
    assert "model.diffusion_model.input_blocks.0.0.weight" in tensors


# --- SD2 and SDXL layouts ------------------------------------------------------------------------


def test_tiny_sdxl_single_file_round_trip(tiny_sdxl: TinyFamilyModel) -> None:
    checkpoint = load_checkpoint(tiny_sdxl.path, device="cpu")
    assert checkpoint.unet.family == checkpoint.clip.family == "sdxl"
    assert_same_weights(checkpoint.unet.unet, tiny_sdxl.unet)
    assert_same_weights(checkpoint.vae.vae, tiny_sdxl.vae)
    assert_same_weights(checkpoint.clip.text_encoder, tiny_sdxl.text_encoder)
    assert_same_weights(checkpoint.clip.text_encoder_2, tiny_sdxl.text_encoder_2)
    assert checkpoint.vae.scaling_factor == 0.13025
    assert checkpoint.clip.tokenizer_2 is not None
    cond = encode(checkpoint.clip, tokenize("a photo of a cat", "sdxl"))
    assert (
        cond.embeds.shape == (1, 77, 64)
        and cond.pooled is not None
        and cond.pooled.shape == (1, 32)
    )


def test_tiny_sd2_single_file_round_trip(tiny_sd2: TinyFamilyModel) -> None:
    checkpoint = load_checkpoint(tiny_sd2.path, device="cpu")
    assert checkpoint.unet.family == "sd2" and checkpoint.unet.prediction_type == "v_prediction"
    assert_same_weights(checkpoint.unet.unet, tiny_sd2.unet)
    assert_same_weights(checkpoint.vae.vae, tiny_sd2.vae)
    assert_same_weights(checkpoint.clip.text_encoder, tiny_sd2.text_encoder)
    assert encode(checkpoint.clip, tokenize("a cat", "sd2")).embeds.shape == (1, 77, 32)


def test_sdxl_second_encoder_problems_are_named(tiny_sdxl: TinyFamilyModel, tmp_path: Path) -> None:
    state = load_file(tiny_sdxl.path)
    state.pop("conditioner.embedders.1.model.ln_final.bias")
    state["conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_bias"] = torch.zeros(
        6
    )
    path = tmp_path / "broken-xl.safetensors"
    save_file(state, path, metadata={METADATA_CONFIGS: json.dumps(tiny_sdxl.configs)})
    error = load_error(path)
    assert error.details["component"] == "text encoder 2 (OpenCLIP-G)"
    assert error.details["missing"] == ["text_model.final_layer_norm.bias"]
    assert len(error.details["mis_shaped"]) == 3  # the fused bias splits into q, k and v


def test_placement_defaults() -> None:
    from nodes.sd.devices import default_dtype, parse_dtype, resolve_placement

    assert resolve_placement("cpu") == (torch.device("cpu"), torch.float32)
    assert resolve_placement("cpu", "bf16") == (torch.device("cpu"), torch.bfloat16)
    assert default_dtype(torch.device("cuda")) == torch.float16
    assert parse_dtype(torch.float16) is torch.float16
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        parse_dtype("fp8")
