"""The nodes added for ComfyUI's classes, run through the executor on the tiny models."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from engine.executor import Executor

CKPT = "tiny-sd1.safetensors"


def base(**sample: Any) -> dict[str, Any]:
    inputs = {"seed": 5, "steps": 2, "cfg": 6.0, "sampler": "euler", "scheduler": "normal"}
    inputs.update(sample)
    return {
        "version": 1,
        "nodes": {
            "ckpt": {"type": "LoadCheckpoint", "inputs": {"checkpoint": CKPT}},
            "pos": {"type": "EncodeText", "inputs": {"text": "a fox"}, "links": {"clip": "ckpt.clip"}},
            "neg": {"type": "EncodeText", "inputs": {"text": "blur"}, "links": {"clip": "ckpt.clip"}},
            "empty": {"type": "EmptyLatent", "inputs": {"width": 64, "height": 64}},
            "sample": {"type": "Sample", "inputs": inputs,
                       "links": {"model": "ckpt.model", "positive": "pos.conditioning",
                                 "negative": "neg.conditioning", "latent": "empty.latent"}},
        },
        "outputs": ["sample"],
    }  # fmt: skip


def value(executor: Executor, graph: dict[str, Any], node: str, output: str) -> Any:
    result = executor.run(graph)
    assert result.status == "finished", result.error
    return result.values[node][output]


def latent(executor: Executor, graph: dict[str, Any]) -> torch.Tensor:
    return value(executor, graph, "sample", "latent").samples


def with_node(graph: dict[str, Any], node_id: str, node: dict[str, Any], **relink: str) -> Any:
    graph = copy.deepcopy(graph)
    graph["nodes"][node_id] = node
    graph["nodes"]["sample"]["links"].update(relink)
    return graph


def test_combining_a_prompt_with_itself_or_a_full_area_changes_nothing(executor: Executor) -> None:
    plain = latent(executor, base())
    doubled = with_node(base(), "both", {"type": "CombineConditioning",
                        "links": {"first": "pos.conditioning", "second": "pos.conditioning"}},
                        positive="both.conditioning")  # fmt: skip
    assert torch.allclose(latent(executor, doubled), plain, atol=1e-4)
    full = with_node(base(), "area", {"type": "SetConditioningArea",
                     "inputs": {"width": 64, "height": 64}, "links": {"conditioning": "pos.conditioning"}},
                     positive="area.conditioning")  # fmt: skip
    assert torch.allclose(latent(executor, full), plain, atol=1e-4)
    half = copy.deepcopy(full)
    half["nodes"]["area"]["inputs"].update(y=32)  # the lower half (the area is clipped)
    other = with_node(half, "mix", {"type": "CombineConditioning",
                      "links": {"first": "neg.conditioning", "second": "area.conditioning"}},
                      positive="mix.conditioning")  # fmt: skip
    mixed = latent(executor, other)
    assert not torch.allclose(mixed, plain, atol=1e-3)
    conditioning = value(executor, {**other, "outputs": ["mix"]}, "mix", "conditioning")
    assert [e.area for e in conditioning.entries()] == [None, (8, 8, 4, 0)]


def test_zeroed_conditioning(executor: Executor) -> None:
    graph = with_node(base(), "zero", {"type": "ZeroConditioning", "links": {"conditioning": "pos.conditioning"}})  # fmt: skip
    zeroed = value(executor, {**graph, "outputs": ["zero"]}, "zero", "conditioning")
    assert zeroed.embeds.shape == (1, 77, 32) and not zeroed.embeds.any()


def test_old_controlnet_apply_also_guides_the_negative(executor: Executor) -> None:
    cn = {"type": "LoadControlNet", "inputs": {"control_net": "tiny-controlnet.safetensors"}}
    image = {"type": "LoadImage", "inputs": {"image": "hint.png"}}
    both = with_node(base(), "apply", {"type": "ApplyControlNet", "inputs": {"strength": 0.7},
                     "links": {"positive": "pos.conditioning", "negative": "neg.conditioning",
                               "control_net": "cn.control_net", "image": "image.image"}},
                     positive="apply.positive", negative="apply.negative")  # fmt: skip
    both["nodes"].update(cn=cn, image=image)
    old = with_node(base(), "apply", {"type": "ApplyControlNetToPrompt", "inputs": {"strength": 0.7},
                    "links": {"conditioning": "pos.conditioning", "control_net": "cn.control_net",
                              "image": "image.image"}},
                    positive="apply.conditioning")  # fmt: skip
    old["nodes"].update(cn=cn, image=image)
    guided = latent(executor, old)
    assert torch.allclose(guided, latent(executor, both), atol=1e-5)
    assert not torch.allclose(guided, latent(executor, base()), atol=1e-3)


def test_sample_steps_windows_and_noise(executor: Executor) -> None:
    advanced = {"type": "SampleSteps",
                "inputs": {"seed": 5, "steps": 2, "cfg": 6.0, "sampler": "euler", "scheduler": "normal"},
                "links": {"model": "ckpt.model", "positive": "pos.conditioning",
                          "negative": "neg.conditioning", "latent": "empty.latent"}}  # fmt: skip
    graph = base()
    graph["nodes"]["adv"] = advanced
    graph["outputs"] = ["adv"]
    full = value(executor, graph, "adv", "latent").samples
    assert torch.allclose(full, latent(executor, base()), atol=1e-6)  # all steps = Sample
    graph["nodes"]["adv"]["inputs"]["start_at_step"] = 2
    skipped = value(executor, graph, "adv", "latent").samples
    assert not skipped.any()  # nothing to do: the (empty) latent comes back as it was
    graph["nodes"]["adv"]["inputs"].update(start_at_step=0, add_noise=False)
    assert not torch.allclose(value(executor, graph, "adv", "latent").samples, full)


def test_comfyui_convention_switch_changes_ancestral_noise(executor: Executor) -> None:
    ours = latent(executor, base(sampler="euler_ancestral"))
    comfy = latent(executor, base(sampler="euler_ancestral", convention="comfyui"))
    assert not torch.allclose(ours, comfy, atol=1e-4)


def test_inpaint_encoding_and_image_masks(executor: Executor) -> None:
    graph = {
        "version": 1,
        "nodes": {
            "ckpt": {"type": "LoadCheckpoint", "inputs": {"checkpoint": CKPT}},
            "image": {"type": "LoadImage", "inputs": {"image": "hint.png"}},
            "alpha": {"type": "LoadImageMask", "inputs": {"image": "hint.png", "channel": "alpha"}},
            "blue": {"type": "LoadImageMask", "inputs": {"image": "hint.png", "channel": "blue"}},
            "inpaint": {"type": "VAEEncodeForInpaint", "inputs": {"grow_mask_by": 6},
                        "links": {"vae": "ckpt.vae", "image": "image.image", "mask": "alpha.mask"}},
        },
        "outputs": ["image", "alpha", "blue", "inpaint"],
    }  # fmt: skip
    result = executor.run(graph)
    assert result.status == "finished", result.error
    mask = result.values["alpha"]["mask"].mask
    assert torch.equal(mask, result.values["image"]["mask"].mask)
    pixels = result.values["image"]["image"].pixels
    assert torch.equal(result.values["blue"]["mask"].mask, pixels[..., 2])
    encoded = result.values["inpaint"]["latent"]
    assert encoded.samples.shape == (1, 4, 8, 8)
    grown = encoded.noise_mask[0, 0]
    assert grown.shape == (64, 64) and set(grown.unique().tolist()) <= {0.0, 1.0}
    assert bool((grown >= mask[0]).all()) and grown.sum() > mask[0].sum()  # grown by 6 px


def test_resize_by_factor_nodes(executor: Executor) -> None:
    graph = base()
    graph["nodes"]["up"] = {"type": "UpscaleLatentBy", "inputs": {"scale_by": 1.5}, "links": {"latent": "empty.latent"}}  # fmt: skip
    graph["nodes"]["image"] = {"type": "LoadImage", "inputs": {"image": "hint.png"}}
    graph["nodes"]["scale"] = {"type": "ScaleImageBy", "inputs": {"scale_by": 0.5, "method": "area"}, "links": {"image": "image.image"}}  # fmt: skip
    graph["outputs"] = ["up", "scale"]
    result = executor.run(graph)
    assert result.values["up"]["latent"].samples.shape == (1, 4, 12, 12)
    assert result.values["scale"]["image"].pixels.shape == (1, 32, 32, 3)


@pytest.mark.parametrize("strength_clip", [0.0, 1.0])
def test_lora_model_only_equals_the_model_half_of_load_lora(
    executor: Executor, strength_clip: float
) -> None:
    lora = "tiny-lora-kohya.safetensors"
    graph = {
        "version": 1,
        "nodes": {
            "ckpt": {"type": "LoadCheckpoint", "inputs": {"checkpoint": CKPT}},
            "both": {"type": "LoadLora", "inputs": {"lora": lora, "strength_model": 0.6, "strength_clip": strength_clip},
                     "links": {"model": "ckpt.model", "clip": "ckpt.clip"}},
            "only": {"type": "LoadLoraModelOnly", "inputs": {"lora": lora, "strength_model": 0.6},
                     "links": {"model": "ckpt.model"}},
        },
        "outputs": ["ckpt", "both", "only"],
    }  # fmt: skip
    result = executor.run(graph)
    assert result.status == "finished", result.error
    a = result.values["both"]["model"].unet.state_dict()
    b = result.values["only"]["model"].unet.state_dict()
    base_unet = (
        result.values["ckpt"]["model"].unet.state_dict() if "ckpt" in result.values else None
    )
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert base_unet is None or any(not torch.equal(a[k], base_unet[k]) for k in a)
