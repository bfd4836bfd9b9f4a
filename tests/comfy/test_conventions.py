"""ComfyUI's same-seed conventions, checked on fixtures: per-step noise, UNet timestep, 8-bit PNGs.

The fixtures restate ComfyUI's documented CPU behaviour (../shared/reference/comfyui.md §6.6):
ancestral noise from a fresh CPU generator seeded with the seed, SDE noise from torchsde's
BrownianTree seeded with the seed over [smallest positive sigma, largest sigma], the nearest
trained timestep for a discrete model, and truncation when quantising to 8 bits.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from nodes.sd.denoiser import UNetDenoiser
from nodes.sd.images import to_8bit
from nodes.sd.noise import initial_noise
from nodes.sd.sample import step_noise_sampler
from nodes.sd.schedules import discrete_schedule, sampling_sigmas
from nodes.sd.values import NoiseSchedule, UNetModel

SHAPE = (1, 4, 8, 8)
SIGMAS = sampling_sigmas(NoiseSchedule(), steps=4, denoise=1.0, scheduler="karras", sampler="euler")


def test_initial_noise_matches_comfyuis_seed_0_fixture() -> None:
    noise = initial_noise(0, (1, 4, 64, 64))
    expected = [-1.12584, -1.15236, -0.250579, -0.433879, 0.84871]
    assert noise.flatten()[:5].tolist() == pytest.approx(expected, abs=1e-5)
    assert float(noise.sum()) == pytest.approx(-124.1127, abs=1e-3)


def test_euler_ancestral_step_noise_is_comfyuis_cpu_generator_seeded_with_the_seed() -> None:
    like = torch.zeros(SHAPE)
    noise = step_noise_sampler("euler_ancestral", 42, like, SIGMAS, "comfyui")
    assert noise is not None
    generator = torch.Generator("cpu").manual_seed(42)
    for step in range(3):
        expected = torch.randn(SHAPE, generator=generator)
        assert torch.equal(noise(float(SIGMAS[step]), float(SIGMAS[step + 1])), expected)
    # ComfyUI's first step noise repeats the initial noise (same seed, fresh generator) ...
    first = step_noise_sampler("euler_ancestral", 42, like, SIGMAS, "comfyui")
    assert first is not None and torch.equal(first(1.0, 0.5), initial_noise(42, SHAPE))
    # ... which our own convention avoids by seeding the steps with seed + 1.
    ours = step_noise_sampler("euler_ancestral", 42, like, SIGMAS)
    assert ours is not None and not torch.equal(ours(1.0, 0.5), initial_noise(42, SHAPE))


def comfy_brownian_fixture(seed: int, sigmas: torch.Tensor) -> Any:
    """k-diffusion's BrownianTreeNoiseSampler on CPU, as ComfyUI's SDE samplers build it."""
    import torchsde

    positive = sigmas[sigmas > 0]
    tree = torchsde.BrownianTree(positive.min(), torch.zeros(SHAPE), sigmas.max(), entropy=seed)

    def noise(sigma: float, sigma_next: float) -> torch.Tensor:
        t0, t1 = torch.as_tensor(sigma), torch.as_tensor(sigma_next)
        low, high, sign = (t0, t1, 1) if t0 < t1 else (t1, t0, -1)
        return tree(low, high) * sign / (t1 - t0).abs().sqrt()

    return noise


@pytest.mark.parametrize("sampler", ["dpmpp_2m_sde", "dpmpp_sde"])
def test_sde_step_noise_is_comfyuis_brownian_tree_seeded_with_the_seed(sampler: str) -> None:
    noise = step_noise_sampler(sampler, 1234, torch.zeros(SHAPE), SIGMAS, "comfyui")
    fixture = comfy_brownian_fixture(1234, SIGMAS)
    assert noise is not None
    levels = [float(s) for s in SIGMAS]
    # Whole steps (dpmpp_2m_sde) and the half-way points dpmpp_sde also asks for.
    queries = list(itertools.pairwise(levels[:-1]))  # the last step, to 0, draws none
    queries += [(a, (a * b) ** 0.5) for a, b in queries]
    for sigma, sigma_next in queries:
        drawn = noise(sigma, sigma_next)
        assert torch.allclose(drawn, fixture(sigma, sigma_next), atol=1e-5)
        assert 0.5 < float(drawn.std()) < 1.5  # unit-variance noise
    ours = step_noise_sampler(sampler, 1234, torch.zeros(SHAPE), SIGMAS)
    assert ours is not None and not torch.allclose(
        ours(levels[0], levels[1]), noise(levels[0], levels[1])
    )


class SpyUNet:
    """Records the timesteps the denoiser feeds it and predicts zero noise."""

    device, dtype = torch.device("cpu"), torch.float32
    config = SimpleNamespace(addition_embed_type=None)

    def __init__(self) -> None:
        self.timesteps: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **_: Any) -> tuple[torch.Tensor]:
        self.timesteps.append(t.clone())
        return (torch.zeros_like(x),)


@pytest.mark.parametrize(("fractional", "nearest"), [(500.3, 500.0), (500.7, 501.0), (0.2, 0.0)])
def test_the_unet_gets_the_nearest_trained_timestep_for_a_fractional_sigma(
    fractional: float, nearest: float
) -> None:
    schedule = discrete_schedule(NoiseSchedule())
    sigma = schedule.sigma(torch.tensor([fractional], dtype=torch.float64)).float()
    embeds = SimpleNamespace(embeds=torch.zeros(1, 77, 8), pooled=None, controls=())
    for comfy, expected in ((True, nearest), (False, fractional)):
        spy = SpyUNet()
        model = UNetModel(unet=spy, family="sd1")
        UNetDenoiser(model, nearest_timestep=comfy).predict(
            torch.zeros(SHAPE),
            sigma,
            [embeds],  # type: ignore[list-item]
        )
        assert float(spy.timesteps[0][0]) == pytest.approx(expected, abs=1e-3)


def test_8bit_quantisation_truncates_like_comfyuis_save_image() -> None:
    pixels = torch.rand(2, 16, 16, 3, generator=torch.Generator().manual_seed(3))
    pixels[0, 0, 0] = torch.tensor([0.999, 0.5, 1.2])
    comfy = np.clip(255.0 * pixels.numpy(), 0, 255).astype(np.uint8)  # ComfyUI's formula
    assert np.array_equal(to_8bit(pixels, truncate=True).numpy(), comfy)
    assert to_8bit(pixels)[0, 0, 0].tolist() == [255, 128, 255]  # our default rounds
    assert to_8bit(pixels, truncate=True)[0, 0, 0].tolist() == [254, 127, 255]
