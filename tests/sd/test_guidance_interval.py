"""GuidanceInterval: CFG only between two fractions of the schedule, the positive prompt alone
elsewhere; on the tiny UNet of the sampling tests, and through graphs on the tiny checkpoint."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DConditionModel
from PIL import Image as PILImage

from engine.config import Paths
from engine.errors import GraphValidationError
from engine.executor import Executor
from engine.registry import default_registry
from engine.validate import validate_graph
from nodes.generation import generation_parameters
from nodes.sd.denoiser import CFGDenoiser, UNetDenoiser
from nodes.sd.schedules import discrete_schedule, sampling_sigmas
from nodes.sd.tiny_models import TinyModels
from nodes.sd.values import Conditioning, NoiseSchedule, UNetModel
from tests.sd.sampling_setup import LATENT, run_sample, seeded_randn

ROOT = Path(__file__).resolve().parents[2]
TXT2IMG = json.loads((ROOT / "graphs" / "txt2img.json").read_text())
HALF = discrete_schedule(NoiseSchedule()).percent_to_sigma(0.5)


def windowed(unet: UNet2DConditionModel, start: float, end: float) -> UNetModel:
    return UNetModel(unet, "sd1", guidance_interval=(start, end))


def test_the_negative_prompt_runs_only_inside_the_interval(
    sd_unet: UNet2DConditionModel,
    embeds: tuple[torch.Tensor, torch.Tensor],
    unet_batches: list[int],
) -> None:
    positive, negative = embeds
    run_sample(windowed(sd_unet, 0.0, 0.5), Conditioning(positive), Conditioning(negative))
    sigmas = sampling_sigmas(
        NoiseSchedule(), steps=10, denoise=1.0, scheduler="normal", sampler="euler"
    )
    expected = [2 * LATENT[0] if s >= HALF else LATENT[0] for s in sigmas[:-1].tolist()]
    assert 2 * LATENT[0] in expected and LATENT[0] in expected  # the window splits the steps
    assert unet_batches == expected


@pytest.mark.parametrize(("area", "sigma"), [(False, 8.0), (False, 0.5), (True, 8.0), (True, 0.5)])
def test_each_step_is_plain_cfg_inside_the_interval_and_cfg_1_outside(
    sd_unet: UNet2DConditionModel,
    embeds: tuple[torch.Tensor, torch.Tensor],
    area: bool,
    sigma: float,
) -> None:
    positive, negative = (Conditioning(e) for e in embeds)
    if area:  # the weighted path: a second positive prompt on part of the latent
        extra = Conditioning(seeded_randn(1, 77, 32, seed=30), area=(4, 4, 0, 0), strength=0.8)
        positive = dataclasses.replace(positive, combined=(extra,))
    denoiser = UNetDenoiser(UNetModel(sd_unet, "sd1"))
    x, s = seeded_randn(*LATENT, seed=31) * sigma, torch.tensor([sigma])
    with torch.no_grad():
        interval = CFGDenoiser(denoiser, positive, negative, 7.5, interval=(0.0, 0.5))(x, s)
        plain = CFGDenoiser(denoiser, positive, negative, 7.5)(x, s)
        unguided = CFGDenoiser(denoiser, positive, negative, 1.0)(x, s)
    expected, other = (plain, unguided) if sigma >= HALF else (unguided, plain)
    assert torch.equal(interval, expected)
    assert not torch.allclose(interval, other)


def test_the_whole_range_is_plain_cfg_and_an_empty_window_is_cfg_1(
    sd_unet: UNet2DConditionModel, embeds: tuple[torch.Tensor, torch.Tensor]
) -> None:
    positive, negative = (Conditioning(e) for e in embeds)

    def run(model: UNetModel, cfg: float) -> torch.Tensor:
        return run_sample(model, positive, negative, cfg=cfg, steps=6, scheduler="karras")

    plain = run(UNetModel(sd_unet, "sd1"), 7.5)
    assert torch.equal(run(windowed(sd_unet, 0.0, 1.0), 7.5), plain)
    assert torch.equal(run(windowed(sd_unet, 1.0, 1.0), 7.5), run(UNetModel(sd_unet, "sd1"), 1.0))
    halfway = run(windowed(sd_unet, 0.0, 0.5), 7.5)
    assert not torch.allclose(halfway, plain)


def with_interval(**inputs: object) -> dict:
    """The README's txt2img graph with a GuidanceInterval between the loader and the sampler."""
    graph = copy.deepcopy(TXT2IMG)
    graph["nodes"]["interval"] = {
        "type": "GuidanceInterval",
        "inputs": inputs,
        "links": {"model": "checkpoint.model"},
    }
    graph["nodes"]["sampler"]["links"]["model"] = "interval.model"
    graph["nodes"]["sampler"]["inputs"]["steps"] = 4
    return graph


@pytest.fixture
def paths(tiny_models: TinyModels, tmp_path: Path) -> Paths:
    return Paths.resolve(
        models=tiny_models.models_dir, input=tmp_path / "input", output=tmp_path / "output"
    )


def test_an_end_before_the_start_is_refused_naming_node_and_input(paths: Paths) -> None:
    graph = with_interval(start_percent=0.6, end_percent=0.2)
    with pytest.raises(GraphValidationError) as caught:
        validate_graph(graph, default_registry(), paths)
    (error,) = caught.value.errors
    assert (error.code.value, error.node_id, error.input) == (
        "invalid_value",
        "interval",
        "end_percent",
    )
    assert "start_percent" in error.message


def test_linked_percents_in_the_wrong_order_fail_before_sampling(paths: Paths) -> None:
    graph = with_interval(start_percent=0.6)
    graph["nodes"]["end"] = {"type": "Float", "inputs": {"value": 0.2}}
    graph["nodes"]["interval"]["links"]["end_percent"] = "end.value"
    result = Executor(default_registry(), paths=paths).run(graph)
    assert result.status == "failed" and result.error is not None
    assert (result.error.node_id, result.error.input) == ("interval", "end_percent")
    assert not paths.output.exists() or not any(paths.output.iterdir())


def test_the_interval_is_applied_and_recorded_in_the_saved_image(paths: Paths) -> None:
    executor = Executor(default_registry(), paths=paths)
    plain = with_interval(start_percent=0.0, end_percent=1.0)
    halfway = with_interval(end_percent=0.5)  # the node's default start, 0
    images = []
    for graph in (plain, halfway):
        result = executor.run(graph)
        assert result.status == "finished", result.error
        (saved,) = result.ui["save"]["images"]
        png = PILImage.open(paths.output / saved["subfolder"] / saved["filename"])
        images.append(png)
    assert "Guidance interval: 0-0.5" in images[1].text["parameters"]
    assert list(images[0].getdata()) != list(images[1].getdata())
    nodes = validate_graph(halfway, default_registry(), paths).nodes
    assert generation_parameters(nodes, "sampler")["Guidance interval"] == "0-0.5"
