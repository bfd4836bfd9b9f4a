"""Area conditioning (ComfyUI's ConditioningSetArea) in the guidance wrapper, on a tiny UNet."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from diffusers import UNet2DConditionModel

from engine.executor import Executor
from engine.formats import convert_document
from nodes.sd.areas import with_opposite_areas, with_uncond_controls
from nodes.sd.denoiser import CFGDenoiser, UNetDenoiser, prepare_prompts
from nodes.sd.values import Conditioning, ControlApplication, UNetModel
from tests.comfy.editor_builder import EditorWorkflow

SIZE = 16  # latent cells (128 pixels): room for an 8-cell area with inner edges on every side
SIGMA = torch.tensor([2.0])


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def unet() -> UNetDenoiser:
    torch.manual_seed(0)
    model = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
    ).eval()
    return UNetDenoiser(UNetModel(model, "sd1"))


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return _randn(1, 4, SIZE, SIZE, seed=1) * 2


def prompt(seed: int, **changes: Any) -> Conditioning:
    return Conditioning(_randn(1, 77, 32, seed=seed), **changes)


def combine(*entries: Conditioning) -> Conditioning:
    return dataclasses.replace(entries[0], combined=entries[1:])


def guided(
    unet: UNetDenoiser, x: torch.Tensor, positive: Conditioning, negative: Conditioning, cfg: float
) -> torch.Tensor:
    with torch.no_grad():
        return CFGDenoiser(unet, positive, negative, cfg)(x, SIGMA)


def alone(
    unet: UNetDenoiser, x: torch.Tensor, entry: Conditioning, crop: tuple[int, int, int, int]
) -> torch.Tensor:
    """One prompt's x0 on a crop (height, width, top, left) of x, as the area code should get it."""
    height, width, top, left = crop
    part = x[..., top : top + height, left : left + width]
    (prepared,) = prepare_prompts([entry], unet.device, unet.dtype)
    with torch.no_grad():
        (output,) = unet.predict(part, SIGMA, [prepared], size=x.shape[-2:])
    return unet.to_x0(part, SIGMA, output)


AREA = (8, 8, 4, 4)  # (height, width, y, x) in cells: rows 4..11, columns 4..11
INSIDE = (slice(None), slice(None), slice(4, 12), slice(4, 12))


def test_an_area_prompt_changes_the_prediction_only_inside_its_area(
    unet: UNetDenoiser, x: torch.Tensor
) -> None:
    plain = guided(unet, x, prompt(10), prompt(11), 7.5)
    area = guided(unet, x, combine(prompt(10), prompt(12, area=AREA)), prompt(11), 7.5)
    outside = torch.ones_like(x, dtype=torch.bool)
    outside[INSIDE] = False
    torch.testing.assert_close(area[outside], plain[outside], rtol=0, atol=1e-5)
    assert (area[INSIDE] - plain[INSIDE]).abs().amax(dim=1).gt(1e-4).all()  # every cell changed


@pytest.mark.parametrize("strength", [0.5, 2.0])
def test_inside_an_area_the_prediction_is_the_strength_weighted_average_with_feathered_edges(
    unet: UNetDenoiser, x: torch.Tensor, strength: float
) -> None:
    base, area = prompt(10), prompt(12, area=AREA, strength=strength)
    result = guided(unet, x, combine(base, area), prompt(11), 1.0)  # cfg 1: the cond alone
    x0_base = alone(unet, x, base, (SIZE, SIZE, 0, 0))
    x0_area = torch.zeros_like(x)
    x0_area[INSIDE] = alone(unet, x, area, AREA)
    # The area prompt ran on the crop, not on the whole latent cropped afterwards.
    assert not torch.allclose(x0_area[INSIDE], alone(unet, x, area, (SIZE, SIZE, 0, 0))[INSIDE])
    # An 8-cell area fades in over min(8, 8 // 4) = 2 cells on each inner edge: 1/2, then 1.
    fade = torch.tensor([0.5, 1, 1, 1, 1, 1, 1, 0.5])
    weight = torch.zeros(SIZE, SIZE)
    weight[4:12, 4:12] = strength * fade[:, None] * fade[None, :]
    expected = (x0_base + weight * x0_area) / (1 + weight)
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-5)


def test_two_areas_combine_by_their_weights_and_uncovered_cells_predict_zero(
    unet: UNetDenoiser, x: torch.Tensor
) -> None:
    first = prompt(12, area=(8, 8, 0, 0), strength=1.0)  # top left, inner edges right and below
    second = prompt(13, area=(8, 8, 4, 6), strength=3.0)
    result = guided(unet, x, combine(first, second), prompt(11), 1.0)
    x0_first = torch.zeros_like(x)
    x0_first[..., 0:8, 0:8] = alone(unet, x, first, (8, 8, 0, 0))
    x0_second = torch.zeros_like(x)
    x0_second[..., 4:12, 6:14] = alone(unet, x, second, (8, 8, 4, 6))
    fade_end, fade_both = torch.tensor([1, 1, 1, 1, 1, 1, 1, 0.5]), torch.tensor([0.5, 1, 1, 1, 1, 1, 1, 0.5])  # fmt: skip
    w_first = torch.zeros(SIZE, SIZE)
    w_first[0:8, 0:8] = fade_end[:, None] * fade_end[None, :]
    w_second = torch.zeros(SIZE, SIZE)
    w_second[4:12, 6:14] = 3.0 * fade_both[:, None] * fade_both[None, :]
    expected = (w_first * x0_first + w_second * x0_second) / (w_first + w_second + 1e-37)
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-5)
    assert not result[..., 12:, :].any() and not result[..., :, 14:].any()


def test_an_area_outside_the_latent_predicts_nothing(unet: UNetDenoiser, x: torch.Tensor) -> None:
    base = prompt(10)
    beyond = guided(unet, x, combine(base, prompt(12, area=(8, 8, 0, SIZE))), prompt(11), 1.0)
    torch.testing.assert_close(beyond, guided(unet, x, base, prompt(11), 1.0), rtol=0, atol=1e-5)


def test_every_area_gets_an_opposite_prompt_of_the_same_area() -> None:
    negative, positive = prompt(11), prompt(10)
    area = prompt(12, area=AREA, strength=0.7)
    positives, negatives = with_opposite_areas([positive, area], [negative])
    assert positives == [positive, area]
    (copy,) = negatives[1:]
    assert copy.area == AREA and copy.strength == 0.7 and copy.embeds is negative.embeds
    # A negative of exactly that area already matches; the smallest covering one is copied.
    same = prompt(13, area=AREA)
    assert with_opposite_areas([area], [negative, same])[1] == [negative, same]
    wide = prompt(14, area=(12, 12, 2, 2))
    assert with_opposite_areas([area], [negative, wide])[1][-1].embeds is wide.embeds
    # An area on the negative side gets a positive of the same area, from the positive's text.
    positives, _ = with_opposite_areas([positive], [negative, area])
    assert positives[-1].area == AREA and positives[-1].embeds is positive.embeds


def test_an_opposite_area_changes_the_uncond_inside_the_area_only(
    unet: UNetDenoiser, x: torch.Tensor
) -> None:
    """With cfg > 1, the negative inside a positive's area is the average of the negative on the
    whole latent and on the crop, weighted like the positive's area."""
    base, area, negative = prompt(10), prompt(12, area=AREA, strength=0.5), prompt(11)
    cfg = 3.0
    result = guided(unet, x, combine(base, area), negative, cfg)
    cond = guided(unet, x, combine(base, area), negative, 1.0)
    uncond_whole = alone(unet, x, negative, (SIZE, SIZE, 0, 0))
    uncond_crop = torch.zeros_like(x)
    uncond_crop[INSIDE] = alone(unet, x, negative, AREA)
    fade = torch.tensor([0.5, 1, 1, 1, 1, 1, 1, 0.5])
    weight = torch.zeros(SIZE, SIZE)
    weight[4:12, 4:12] = 0.5 * fade[:, None] * fade[None, :]
    uncond = (uncond_whole + weight * uncond_crop) / (1 + weight)
    torch.testing.assert_close(result, uncond + (cond - uncond) * cfg, rtol=0, atol=1e-4)


def test_only_area_free_positives_hand_old_style_controlnets_to_the_negative() -> None:
    old = ControlApplication(controlnet=object(), image=torch.zeros(1, 3, 8, 8), to_uncond=True)
    new = dataclasses.replace(old, to_uncond=False)
    negative = prompt(11)
    (given,) = with_uncond_controls([negative], [prompt(10, controls=(new, old))])
    assert given.controls == (new, old)  # the whole chain, as ComfyUI hands it on
    assert with_uncond_controls([negative], [prompt(10, controls=(old,), area=AREA)]) == [negative]
    assert with_uncond_controls([negative], [prompt(10, controls=(old, new))]) == [negative]
    own = prompt(13, controls=(new,))
    assert with_uncond_controls([own], [prompt(10, controls=(old,))]) == [own]


def test_comfyui_conditioning_set_area_inputs_map_in_both_formats(executor: Executor) -> None:
    """ConditioningSetArea's width/height/x/y (pixels) and strength become our node's, in cells."""
    api = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd1.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["4", 1]}},
        "52": {"class_type": "ConditioningSetArea", "inputs": {
            "conditioning": ["6", 0], "width": 64, "height": 96, "x": 16, "y": 8, "strength": 0.7}},
    }  # fmt: skip
    flow = EditorWorkflow()
    flow.add(4, "CheckpointLoaderSimple", ["tiny-sd1.safetensors"])
    flow.add(6, "CLIPTextEncode", ["a fox"])
    flow.connect(4, 1, 6, "clip")
    flow.add(52, "ConditioningSetArea", [64, 96, 16, 8, 0.7])
    flow.connect(6, 0, 52, "conditioning")
    for document in (api, flow.saved()):
        graph = convert_document(document, executor.registry).document
        node = graph["nodes"]["n52"]
        assert node["type"] == "SetConditioningArea"
        assert node["inputs"] == {"width": 64, "height": 96, "x": 16, "y": 8, "strength": 0.7}
        result = executor.run({**graph, "outputs": ["n52"]})
        assert result.status == "finished", result.error
        conditioning = result.values["n52"]["conditioning"]
        assert (conditioning.area, conditioning.strength) == ((12, 8, 1, 2), 0.7)
