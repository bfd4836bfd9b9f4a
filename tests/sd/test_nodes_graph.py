"""Every Stable Diffusion node, run through the executor on the tiny models in their real layouts."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image as PILImage

from engine.config import Paths
from engine.executor import Executor
from engine.registry import default_registry
from nodes.sd.tiny_models import TinyModels
from nodes.sd.values import Image, Latent
from tests.sd.infotext_reader import infotext_fields, read_parameters

ROOT = Path(__file__).resolve().parents[2]
TXT2IMG = json.loads((ROOT / "graphs" / "txt2img.json").read_text())


@pytest.fixture(scope="module")
def folders(tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Paths:
    root = tmp_path_factory.mktemp("run")
    inputs = root / "input"
    inputs.mkdir()
    image = PILImage.new("RGBA", (64, 64), (200, 40, 40, 255))
    for x in range(16, 48):
        for y in range(16, 48):
            image.putpixel((x, y), (0, 0, 255, 0))  # a transparent square: the mask
    image.save(inputs / "hint.png")
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return Paths.resolve(models=tiny_models.models_dir, input=inputs, output=root / "output")


@pytest.fixture(scope="module")
def executor(folders: Paths) -> Executor:
    return Executor(default_registry(), paths=folders)


def small(graph: dict, steps: int = 4, size: int = 64) -> dict:
    graph = copy.deepcopy(graph)
    graph["nodes"]["sampler"]["inputs"]["steps"] = steps
    graph["nodes"]["latent"]["inputs"].update(width=size, height=size)
    return graph


def test_txt2img_writes_a_png_carrying_its_graph(executor: Executor, folders: Paths) -> None:
    events: list = []
    result = executor.run(small(TXT2IMG), on_event=events.append)
    assert result.status == "finished", result.error
    (saved,) = result.ui["save"]["images"]
    png = PILImage.open(folders.output / saved["subfolder"] / saved["filename"])
    assert png.size == (64, 64)
    graph = json.loads(png.text["latentgraph.graph"])
    assert graph["nodes"]["sampler"]["inputs"]["steps"] == 4
    parameters = read_parameters(folders.output / saved["subfolder"] / saved["filename"])
    assert parameters.prompts == ["a red circle on a blue background"]
    # A1111-style text, complete with the inputs the file leaves at their defaults.
    assert png.text["parameters"] == (
        "a red circle on a blue background\n"
        "Steps: 4, Sampler: Euler, Schedule type: Normal, CFG scale: 7.5, Seed: 7, Size: 64x64, "
        "Model: latentgraph-shapes"
    )
    assert parameters.sampler == "Euler" and parameters.model == "latentgraph-shapes"
    assert parameters.settings == {"cfg_scale": "7.5", "seed": "7", "steps": "4"}
    progress = [e for e in events if e.type == "progress"]
    assert [e.value for e in progress] == [1, 2, 3, 4] and progress[0].max == 4
    preview = progress[0].preview()  # each step's event carries a thunk drawing a small preview
    assert isinstance(preview, PILImage.Image) and preview.size[0] >= 8


def test_a_controlnet_graph_saves_its_prompts_defaults_and_controlnet_a1111_style(
    executor: Executor, folders: Paths
) -> None:
    graph = small(json.loads((ROOT / "graphs" / "controlnet.json").read_text()), steps=2)
    graph["nodes"]["hint"]["inputs"]["image"] = "hint.png"
    graph["nodes"]["negative"]["inputs"]["text"] = "blurry, dark"
    result = executor.run(graph)
    assert result.status == "finished", result.error
    (saved,) = result.ui["save"]["images"]
    path = folders.output / saved["subfolder"] / saved["filename"]
    text = PILImage.open(path).text
    assert text["parameters"] == (
        "a yellow square on a purple background\n"
        "Negative prompt: blurry, dark\n"
        # sampler and scheduler are not in the file: their defaults are what ran
        "Steps: 2, Sampler: Euler, Schedule type: Normal, CFG scale: 5, Seed: 3, Size: 64x64, "
        "Model: latentgraph-shapes, Guidance interval: 0-0.5, ControlNet 0: "
        '"Model: latentgraph-shapes-controlnet, Weight: 1, Guidance Start: 0, Guidance End: 1"'
    )
    saved_graph = json.loads(text["latentgraph.graph"])  # our graph JSON beside it
    assert saved_graph["nodes"].keys() == graph["nodes"].keys()
    assert saved_graph["nodes"]["negative"]["inputs"]["text"] == "blurry, dark"
    parameters = read_parameters(path)  # as another tool reads it
    assert parameters.prompts == ["a yellow square on a purple background"]
    assert parameters.negative_prompts == ["blurry, dark"]
    assert (parameters.sampler, parameters.model) == ("Euler", "latentgraph-shapes")
    assert parameters.settings == {"cfg_scale": "5", "seed": "3", "steps": "2"}
    assert infotext_fields(text["parameters"])["ControlNet 0"] == (
        "Model: latentgraph-shapes-controlnet, Weight: 1, Guidance Start: 0, Guidance End: 1"
    )


def test_identical_rerun_executes_nothing_and_a_new_seed_only_samples_again(
    executor: Executor,
) -> None:
    graph = small(TXT2IMG)
    executor.run(graph)
    assert executor.run(graph).executed == []
    graph["nodes"]["sampler"]["inputs"]["seed"] = 8
    assert executor.run(graph).executed == ["sampler", "decode", "save"]


def test_seed_is_deterministic_and_matters(executor: Executor) -> None:
    graph = small(TXT2IMG)
    graph["nodes"]["sampler"]["inputs"].update(seed=11)
    graph["outputs"] = ["sampler"]
    first = executor.run(graph).values["sampler"]["latent"].samples
    executor.cache.clear()
    again = executor.run(graph).values["sampler"]["latent"].samples
    graph["nodes"]["sampler"]["inputs"].update(seed=12)
    other = executor.run(graph).values["sampler"]["latent"].samples
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_diffusers_folder_checkpoint_gives_the_same_image(executor: Executor) -> None:
    graph = small(TXT2IMG)
    graph["nodes"]["checkpoint"]["inputs"]["checkpoint"] = "tiny-sd1.safetensors"
    graph["outputs"] = ["decode"]
    single = executor.run(graph).values["decode"]["image"].pixels
    graph["nodes"]["checkpoint"]["inputs"]["checkpoint"] = "tiny-sd1-diffusers"
    folder = executor.run(graph).values["decode"]["image"].pixels
    assert torch.equal(single, folder)


def test_img2img_inpainting_controlnet_lora_vae_and_transforms(executor: Executor) -> None:
    nodes = {
        "checkpoint": {"type": "LoadCheckpoint", "inputs": {"checkpoint": "tiny-sd1.safetensors"}},
        "lora": {
            "type": "LoadLora",
            "inputs": {
                "lora": "tiny-lora-kohya.safetensors",
                "strength_model": 0.7,
                "strength_clip": 0.5,
            },
            "links": {"model": "checkpoint.model", "clip": "checkpoint.clip"},
        },
        "vae": {"type": "LoadVAE", "inputs": {"vae": "tiny-vae.safetensors"}},
        "cn": {"type": "LoadControlNet", "inputs": {"control_net": "tiny-controlnet.safetensors"}},
        "image": {"type": "LoadImage", "inputs": {"image": "hint.png"}},
        "tokens": {
            "type": "Tokenize",
            "inputs": {"text": "a (cat:1.3) [dog]"},
            "links": {"clip": "lora.clip"},
        },
        "positive": {
            "type": "EncodeTokens",
            "inputs": {"clip_skip": 2},
            "links": {"clip": "lora.clip", "tokens": "tokens.tokens"},
        },
        "negative": {"type": "EncodeText", "inputs": {"text": ""}, "links": {"clip": "lora.clip"}},
        "control": {
            "type": "ApplyControlNet",
            "inputs": {"strength": 0.9, "start_percent": 0.0, "end_percent": 0.5},
            "links": {
                "positive": "positive.conditioning",
                "negative": "negative.conditioning",
                "control_net": "cn.control_net",
                "image": "image.image",
            },
        },
        "encode": {
            "type": "VAEEncodeTiled",
            "inputs": {"tile_size": 64, "overlap": 16},
            "links": {"vae": "vae.vae", "image": "image.image"},
        },
        "seed": {"type": "Int", "inputs": {"value": 5}},
        "cfg": {"type": "Float", "inputs": {"value": 5.0}},
        "masked": {
            "type": "SetLatentNoiseMask",
            "links": {"latent": "encode.latent", "mask": "image.mask"},
        },
        "sampler": {
            "type": "Sample",
            "inputs": {
                "steps": 3,
                "sampler": "dpmpp_2m",
                "scheduler": "karras",
                "denoise": 0.6,
            },
            "links": {
                "model": "lora.model",
                "positive": "control.positive",
                "negative": "control.negative",
                "latent": "masked.latent",
                "seed": "seed.value",
                "cfg": "cfg.value",
            },
        },
        "upscale": {
            "type": "UpscaleLatent",
            "inputs": {"width": 96, "height": 0},
            "links": {"latent": "sampler.latent"},
        },
        "decode": {
            "type": "VAEDecodeTiled",
            "inputs": {"tile_size": 64, "overlap": 16},
            "links": {"vae": "vae.vae", "latent": "upscale.latent"},
        },
        "scale": {
            "type": "ScaleImage",
            "inputs": {"width": 48, "height": 0, "method": "lanczos"},
            "links": {"image": "decode.image"},
        },
        "save": {
            "type": "SaveImage",
            "inputs": {"prefix": "combo/all"},
            "links": {"images": "scale.image"},
        },
        "preview": {"type": "PreviewImage", "links": {"images": "decode.image"}},
    }
    result = executor.run({"nodes": nodes})
    assert result.status == "finished", result.error
    assert result.ui["save"]["images"][0]["subfolder"] == "combo"
    assert result.ui["preview"]["images"][0]["subfolder"] == "previews"
    executor_values = executor.run(
        {"nodes": nodes, "outputs": ["masked", "upscale", "scale"]}
    ).values
    masked: Latent = executor_values["masked"]["latent"]
    assert masked.noise_mask is not None and masked.noise_mask.shape == (1, 1, 8, 8)
    # The transparent square is the masked (changeable) area.
    assert masked.noise_mask[0, 0, 4, 4] > 0.9 and masked.noise_mask[0, 0, 0, 0] < 0.1
    assert executor_values["upscale"]["latent"].samples.shape == (1, 4, 12, 12)
    assert executor_values["scale"]["image"].pixels.shape == (1, 48, 48, 3)


def test_inpainting_keeps_the_unmasked_latent(executor: Executor) -> None:
    nodes = {
        "checkpoint": {"type": "LoadCheckpoint", "inputs": {"checkpoint": "tiny-sd1.safetensors"}},
        "image": {"type": "LoadImage", "inputs": {"image": "hint.png"}},
        "encode": {"type": "VAEEncode", "links": {"vae": "checkpoint.vae", "image": "image.image"}},
        "masked": {
            "type": "SetLatentNoiseMask",
            "links": {"latent": "encode.latent", "mask": "image.mask"},
        },
        "text": {
            "type": "EncodeText",
            "inputs": {"text": "x"},
            "links": {"clip": "checkpoint.clip"},
        },
        "sampler": {
            "type": "Sample",
            "inputs": {"steps": 3, "cfg": 1.0},
            "links": {
                "model": "checkpoint.model",
                "positive": "text.conditioning",
                "negative": "text.conditioning",
                "latent": "masked.latent",
            },
        },
    }
    values = executor.run({"nodes": nodes, "outputs": ["encode", "masked", "sampler"]}).values
    original = values["encode"]["latent"].samples
    mask = values["masked"]["latent"].noise_mask
    out = values["sampler"]["latent"].samples
    keep = (mask == 0).expand_as(out)
    assert keep.any()
    assert torch.allclose(out[keep], original[keep], atol=1e-5)
    assert not torch.allclose(out[~keep], original[~keep], atol=1e-3)


def test_tiled_decode_equals_the_whole_decode_and_tiled_encode_blends(
    tiny_models: TinyModels,
) -> None:
    from nodes.sd import vae as vae_lib
    from nodes.sd.values import VaeModel

    vae = VaeModel(vae=tiny_models.vae, scaling_factor=0.18215)
    latents = torch.randn(1, 4, 24, 24, generator=torch.Generator().manual_seed(0))
    whole = vae_lib.decode(vae, latents)
    for tile in (256, 128, 64):  # one tile; 128 + 64 px (a part tile); 3 x 3 tiles
        tiled = vae_lib.decode_tiled(vae, latents, tile=tile)
        assert tiled.shape == whole.shape == (1, 192, 192, 3)
        assert (tiled - whole).abs().max() < 1e-4, tile
    pixels = whole[:, :128, :128]
    encoded = vae_lib.encode_tiled(vae, pixels, tile=64, overlap=16)
    assert encoded.shape == (1, 4, 16, 16)


def test_tiled_decode_refuses_a_decoder_it_cannot_follow(tiny_models: TinyModels) -> None:
    from nodes.sd import vae as vae_lib
    from nodes.sd.values import VaeModel

    model = copy.deepcopy(tiny_models.vae)
    del model.decoder.mid_block
    with pytest.raises(ValueError, match="not a diffusers AutoencoderKL decoder"):
        vae_lib.decode_tiled(VaeModel(vae=model), torch.zeros(1, 4, 8, 8), tile=64)


def test_bad_image_fails_cleanly_naming_node_and_input(executor: Executor) -> None:
    result = executor.run(_load_and_save("broken.png"))
    assert result.status == "failed"
    assert result.error is not None
    assert (result.error.node_id, result.error.input) == ("image", "image")
    assert "not a readable image" in result.error.message


def test_an_image_path_leaving_the_input_folder_is_refused_before_anything_runs(
    executor: Executor,
) -> None:
    from engine.errors import GraphValidationError

    events: list = []
    with pytest.raises(GraphValidationError) as refused:
        executor.run(_load_and_save("../escape.png"), on_event=events.append)
    (error,) = refused.value.errors
    assert (error.code.value, error.node_id, error.input) == (
        "value_not_in_choices",
        "image",
        "image",
    )
    assert events == []


def test_load_image_refuses_a_listed_file_that_links_out_of_the_input_folder(
    executor: Executor, folders: Paths, tmp_path: Path
) -> None:
    """The runtime guard: a symlink is listed among the choices, so validation lets it through."""
    outside = tmp_path / "outside.png"
    PILImage.new("RGB", (8, 8)).save(outside)
    link = folders.input / "escape-link.png"
    link.symlink_to(outside)
    try:
        result = executor.run(_load_and_save("escape-link.png"))
    finally:
        link.unlink()
    assert result.status == "failed" and result.error is not None
    assert (result.error.node_id, result.error.input) == ("image", "image")
    assert "outside the input folder" in result.error.message
    assert result.executed == []


def _load_and_save(image: str) -> dict:
    return {
        "nodes": {
            "image": {"type": "LoadImage", "inputs": {"image": image}},
            "save": {"type": "SaveImage", "links": {"images": "image.image"}},
        }
    }


def test_corrupt_checkpoint_fails_cleanly(executor: Executor, folders: Paths) -> None:
    broken = folders.models / "checkpoints" / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    try:
        graph = small(TXT2IMG)
        graph["nodes"]["checkpoint"]["inputs"]["checkpoint"] = "broken.safetensors"
        result = executor.run(graph)
    finally:
        broken.unlink()
    assert result.status == "failed" and result.error is not None
    assert (result.error.node_id, result.error.input) == ("checkpoint", "checkpoint")
    assert "broken.safetensors" in result.error.message


def test_loader_choices_come_from_the_models_folder(folders: Paths) -> None:
    catalog = default_registry().catalog(folders)
    checkpoint = next(
        i for i in catalog["nodes"]["LoadCheckpoint"]["inputs"] if i["name"] == "checkpoint"
    )
    assert "tiny-sd1.safetensors" in checkpoint["choices"]
    loras = next(i for i in catalog["nodes"]["LoadLora"]["inputs"] if i["name"] == "lora")
    assert set(loras["choices"]) >= {
        "tiny-lora-kohya.safetensors",
        "tiny-lora-diffusers.safetensors",
    }


def test_node_scheduler_names_match_the_library() -> None:
    from nodes.sampling import SCHEDULER_NAMES
    from nodes.sd.schedules import SCHEDULERS

    assert set(SCHEDULER_NAMES) == set(SCHEDULERS)


def test_cli_run_with_seed_override_writes_a_png(tiny_models: TinyModels, tmp_path: Path) -> None:
    graph = tmp_path / "t2i.json"
    graph.write_text(json.dumps(small(TXT2IMG, steps=2)))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "latentgraph_cli",
            "run",
            str(graph),
            "--set",
            "sampler.seed=7",
            "--models",
            str(tiny_models.models_dir),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr
    written = tmp_path / "out" / "txt2img_00001.png"
    assert f"save: wrote {written}" in done.stdout
    text = PILImage.open(written).text
    assert json.loads(text["latentgraph.graph"])["nodes"]["sampler"]["inputs"]["seed"] == 7


def test_image_values_are_channels_last_in_unit_range(executor: Executor) -> None:
    graph = small(TXT2IMG)
    graph["outputs"] = ["decode"]
    image: Image = executor.run(graph).values["decode"]["image"]
    assert image.pixels.shape == (1, 64, 64, 3)
    assert 0.0 <= float(image.pixels.min()) and float(image.pixels.max()) <= 1.0


def test_primitive_nodes_feed_and_show_values(executor: Executor) -> None:
    nodes = {
        "flag": {"type": "Boolean", "inputs": {"value": True}},
        "words": {"type": "Text", "inputs": {"text": "hello"}},
        "show": {"type": "ShowText", "links": {"text": "words.text"}},
    }
    result = executor.run({"nodes": nodes, "outputs": ["flag", "show"]})
    assert result.values["flag"] == {"value": True}
    assert result.ui["show"] == {"text": ["hello"]}


def test_replacing_a_model_file_reloads_it(tiny_models: TinyModels, tmp_path: Path) -> None:
    """Loaders are fingerprinted by the file's size and time: a new file under the same name
    is loaded again, and what depends on it computes again with the new weights."""
    import shutil

    from safetensors.torch import load_file, save_file

    models = tmp_path / "models"
    (models / "vae").mkdir(parents=True)
    swapped = models / "vae" / "swap.safetensors"
    shutil.copy(tiny_models.vae_file, swapped)
    executor = Executor(default_registry(), paths=Paths.resolve(models=models, output=tmp_path))
    graph = {
        "nodes": {
            "vae": {"type": "LoadVAE", "inputs": {"vae": "swap.safetensors"}},
            "latent": {"type": "EmptyLatent", "inputs": {"width": 32, "height": 32}},
            "decode": {"type": "VAEDecode", "links": {"vae": "vae.vae", "latent": "latent.latent"}},
        },
        "outputs": ["decode"],
    }
    first = executor.run(graph)
    assert first.executed == ["vae", "latent", "decode"]
    assert executor.run(graph).executed == []
    weights = load_file(swapped)
    metadata = safe_open_metadata(swapped)
    save_file(
        {k: v * 1.5 if v.is_floating_point() else v for k, v in weights.items()},
        swapped,
        metadata=metadata,
    )
    later = swapped.stat().st_mtime_ns + 10**9  # a coarse file-system clock might not tick
    os.utime(swapped, ns=(later, later))
    again = executor.run(graph)
    assert again.executed == ["vae", "decode"]
    before, after = first.values["decode"]["image"].pixels, again.values["decode"]["image"].pixels
    assert not torch.equal(before, after)  # decoded with the new weights, not a cached model


def safe_open_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as opened:
        return opened.metadata() or {}
