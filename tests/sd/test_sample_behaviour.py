"""How `sample()` behaves: batching, ControlNet windows, masks, callbacks, seeds, bad names.

The models and helpers are those of the parity tests (tests/sd/sampling_setup.py).
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from diffusers import (
    ControlNetModel,
    UNet2DConditionModel,
)

from nodes.sd import values
from nodes.sd.denoiser import CFGDenoiser, UNetDenoiser
from nodes.sd.noise import initial_noise
from nodes.sd.sample import sample, step_noise_sampler
from nodes.sd.schedules import discrete_schedule, sampling_sigmas
from nodes.sd.values import (
    Conditioning,
    ControlApplication,
    Latent,
    UNetModel,
)
from tests.sd.sampling_setup import (
    LATENT,
    TOLERANCE,
    run_sample,
    seeded_randn,
)


def test_cfg_batches_cond_and_uncond_in_one_forward(
    sd_unet: UNet2DConditionModel,
    embeds: tuple[torch.Tensor, torch.Tensor],
    unet_batches: list[int],
) -> None:
    positive, negative = embeds
    sample(
        UNetModel(sd_unet, "sd1"),
        Conditioning(positive),
        Conditioning(negative),
        Latent(torch.zeros(2, 4, 8, 8)),
        seed=1,
        steps=3,
        cfg=5.0,
        sampler_name="heun",
        scheduler="karras",
    )
    assert unet_batches == [4] * 5  # heun: two calls per step but one on the last


def test_sdxl_without_pooled_embeddings_is_an_error(sdxl_unet: UNet2DConditionModel) -> None:
    with pytest.raises(ValueError, match="pooled"):
        sample(
            UNetModel(sdxl_unet, "sdxl"),
            Conditioning(seeded_randn(1, 77, 64, seed=1)),
            Conditioning(seeded_randn(1, 77, 64, seed=2)),
            Latent(torch.zeros(LATENT)),
            seed=0,
            steps=2,
            cfg=7.5,
            sampler_name="euler",
            scheduler="normal",
        )


def test_controlnet_is_active_only_inside_its_window(
    sd_unet: UNet2DConditionModel,
    controlnets: tuple[ControlNetModel, ControlNetModel],
    embeds: tuple[torch.Tensor, torch.Tensor],
    hints: tuple[torch.Tensor, torch.Tensor],
) -> None:
    positive, negative = embeds
    calls: list[int] = []
    handle = controlnets[0].register_forward_pre_hook(
        lambda m, args: calls.append(args[0].shape[0])
    )
    try:
        window = ControlApplication(values.ControlNetModel(controlnets[0]), hints[0], 1.0, 0.3, 0.7)
        run_sample(
            sd_unet,
            Conditioning(positive, controls=(window,)),
            Conditioning(negative, controls=(window,)),
        )
        # ComfyUI's window is in noise levels: active while sigma(70%) <= sigma <= sigma(30%).
        schedule = discrete_schedule(values.NoiseSchedule())
        sigmas = sampling_sigmas(
            values.NoiseSchedule(), steps=10, denoise=1.0, scheduler="normal", sampler="euler"
        )
        high, low = schedule.percent_to_sigma(0.3), schedule.percent_to_sigma(0.7)
        inside = sum(low <= s <= high for s in sigmas[:-1].tolist())
        assert 0 < inside < 10
        assert calls == [2] * inside  # one batched call for cond and uncond per active step

        calls.clear()
        never = ControlApplication(values.ControlNetModel(controlnets[0]), hints[0], 1.0, 1.0, 1.0)
        gated = run_sample(
            sd_unet,
            Conditioning(positive, controls=(never,)),
            Conditioning(negative, controls=(never,)),
        )
        assert calls == []
        assert torch.equal(
            gated, run_sample(sd_unet, Conditioning(positive), Conditioning(negative))
        )
    finally:
        handle.remove()


def test_controlnet_on_the_positive_prompt_only_runs_on_its_half(
    sd_unet: UNet2DConditionModel,
    controlnets: tuple[ControlNetModel, ControlNetModel],
    embeds: tuple[torch.Tensor, torch.Tensor],
    hints: tuple[torch.Tensor, torch.Tensor],
) -> None:
    positive, negative = embeds
    app = ControlApplication(values.ControlNetModel(controlnets[0]), hints[0], 0.9)
    calls: list[int] = []
    handle = controlnets[0].register_forward_pre_hook(
        lambda m, args: calls.append(args[0].shape[0])
    )
    try:
        one_sided = run_sample(
            sd_unet, Conditioning(positive, controls=(app,)), Conditioning(negative), steps=4
        )
    finally:
        handle.remove()
    assert calls == [1] * 4
    both = run_sample(
        sd_unet,
        Conditioning(positive, controls=(app,)),
        Conditioning(negative, controls=(app,)),
        steps=4,
    )
    neither = run_sample(sd_unet, Conditioning(positive), Conditioning(negative), steps=4)
    assert (one_sided - both).abs().max() > 100 * TOLERANCE
    assert (one_sided - neither).abs().max() > 100 * TOLERANCE


def test_a_hint_of_another_size_is_fitted_to_the_latent(
    sd_unet: UNet2DConditionModel,
    controlnets: tuple[ControlNetModel, ControlNetModel],
    embeds: tuple[torch.Tensor, torch.Tensor],
    hints: tuple[torch.Tensor, torch.Tensor],
) -> None:
    positive, negative = embeds
    # Nearest-exact upscaling by 2 repeats each pixel, so it must give the same result.
    small = hints[0][:, :, ::2, ::2]
    big = torch.nn.functional.interpolate(small, scale_factor=2, mode="nearest-exact")
    results = []
    for hint in (small, big):
        app = ControlApplication(values.ControlNetModel(controlnets[0]), hint, 0.7)
        results.append(
            run_sample(
                sd_unet,
                Conditioning(positive, controls=(app,)),
                Conditioning(negative, controls=(app,)),
                steps=3,
            )
        )
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("sampler_name", ["euler", "ddim", "dpmpp_2m"])
def test_noise_mask_keeps_the_unmasked_latent(
    sd_unet: UNet2DConditionModel, embeds: tuple[torch.Tensor, torch.Tensor], sampler_name: str
) -> None:
    positive, negative = embeds
    start = seeded_randn(*LATENT, seed=50)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4] = 1.0  # resample the left half
    out = run_sample(
        sd_unet,
        Conditioning(positive),
        Conditioning(negative),
        latent=Latent(start, noise_mask=mask),
        sampler_name=sampler_name,
        denoise=0.8,
    )
    torch.testing.assert_close(out[..., 4:], start[..., 4:], rtol=0, atol=1e-5)
    assert (out[..., :4] - start[..., :4]).abs().max() > 0.1


def test_ddim_holds_the_unmasked_region_with_its_own_noise(
    sd_unet: UNet2DConditionModel, embeds: tuple[torch.Tensor, torch.Tensor]
) -> None:
    positive, negative = embeds
    start = seeded_randn(*LATENT, seed=51)
    # A low-resolution mask is resized to the latent, as ComfyUI does.
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    results = {
        name: run_sample(
            sd_unet,
            Conditioning(positive),
            Conditioning(negative),
            latent=Latent(start, noise_mask=mask),
            sampler_name=name,
        )
        for name in ("euler", "ddim")
    }
    # Without a mask ddim and euler agree; with one, ddim re-noises the kept part differently.
    assert (results["euler"] - results["ddim"]).abs().max() > 100 * TOLERANCE
    unmasked = run_sample(
        sd_unet, Conditioning(positive), Conditioning(negative), latent=Latent(start)
    )
    ddim_unmasked = run_sample(
        sd_unet,
        Conditioning(positive),
        Conditioning(negative),
        latent=Latent(start),
        sampler_name="ddim",
    )
    torch.testing.assert_close(unmasked, ddim_unmasked, rtol=0, atol=1e-4)


def test_on_step_reports_every_step_and_can_cancel(
    sd_unet: UNet2DConditionModel,
    embeds: tuple[torch.Tensor, torch.Tensor],
    unet_batches: list[int],
) -> None:
    positive, negative = embeds
    seen: list[tuple[int, int, tuple[int, ...]]] = []
    run_sample(
        sd_unet,
        Conditioning(positive),
        Conditioning(negative),
        steps=5,
        on_step=lambda i, total, x0: seen.append((i, total, tuple(x0.shape))),
    )
    assert seen == [(i, 5, LATENT) for i in range(5)]

    class Cancelled(Exception):
        pass

    def cancel_at_two(i: int, total: int, x0: torch.Tensor) -> None:
        if i == 2:
            raise Cancelled

    unet_batches.clear()
    with pytest.raises(Cancelled):
        run_sample(
            sd_unet, Conditioning(positive), Conditioning(negative), steps=20, on_step=cancel_at_two
        )
    assert len(unet_batches) == 3


def test_denoise_zero_returns_the_latent_unchanged(
    sd_unet: UNet2DConditionModel,
    embeds: tuple[torch.Tensor, torch.Tensor],
    unet_batches: list[int],
) -> None:
    positive, negative = embeds
    start = seeded_randn(*LATENT, seed=60)
    out = run_sample(
        sd_unet, Conditioning(positive), Conditioning(negative), latent=Latent(start), denoise=0.0
    )
    assert torch.equal(out, start) and unet_batches == []


def test_the_first_image_of_a_batch_is_the_single_image_of_the_same_seed(
    sd_unet: UNet2DConditionModel, embeds: tuple[torch.Tensor, torch.Tensor]
) -> None:
    positive, negative = embeds
    batch = run_sample(
        sd_unet,
        Conditioning(positive),
        Conditioning(negative),
        latent=Latent(torch.zeros(2, 4, 8, 8)),
    )
    single = run_sample(sd_unet, Conditioning(positive), Conditioning(negative))
    torch.testing.assert_close(batch[:1], single, rtol=0, atol=TOLERANCE)
    assert (batch[1] - batch[0]).abs().max() > 1.0


@pytest.mark.parametrize("sampler_name", ["euler_ancestral", "dpmpp_2m_sde"])
def test_stochastic_samplers_are_reproducible_from_the_seed(
    sd_unet: UNet2DConditionModel, embeds: tuple[torch.Tensor, torch.Tensor], sampler_name: str
) -> None:
    positive, negative = embeds
    first = run_sample(
        sd_unet, Conditioning(positive), Conditioning(negative), sampler_name=sampler_name, steps=4
    )
    again = run_sample(
        sd_unet, Conditioning(positive), Conditioning(negative), sampler_name=sampler_name, steps=4
    )
    other = run_sample(
        sd_unet,
        Conditioning(positive),
        Conditioning(negative),
        sampler_name=sampler_name,
        steps=4,
        seed=6,
    )
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_prompts_of_different_lengths_batch_by_repeating_tokens(
    sd_unet: UNet2DConditionModel, embeds: tuple[torch.Tensor, torch.Tensor]
) -> None:
    positive, negative = embeds
    long_positive = torch.cat([positive, negative], dim=1)  # two 77-token windows
    denoiser = UNetDenoiser(UNetModel(sd_unet, "sd1"))
    x, sigma = seeded_randn(*LATENT, seed=70) * 3, torch.tensor([3.0])
    with torch.no_grad():
        mixed = CFGDenoiser(denoiser, Conditioning(long_positive), Conditioning(negative), 7.5)(
            x, sigma
        )
        doubled = CFGDenoiser(
            denoiser, Conditioning(long_positive), Conditioning(negative.repeat(1, 2, 1)), 7.5
        )(x, sigma)
        # Attention over every token twice equals attention over each once.
        once = CFGDenoiser(denoiser, Conditioning(negative), Conditioning(negative), 7.5)(x, sigma)
        twice = CFGDenoiser(
            denoiser,
            Conditioning(negative.repeat(1, 2, 1)),
            Conditioning(negative.repeat(1, 2, 1)),
            7.5,
        )(x, sigma)
    assert torch.equal(mixed, doubled)
    torch.testing.assert_close(once, twice, rtol=0, atol=1e-5)


def test_unknown_names_are_rejected(
    sd_unet: UNet2DConditionModel, embeds: tuple[torch.Tensor, torch.Tensor]
) -> None:
    positive, negative = embeds
    with pytest.raises(ValueError, match="unknown sampler"):
        run_sample(sd_unet, Conditioning(positive), Conditioning(negative), sampler_name="dpm_fast")
    with pytest.raises(ValueError, match="unknown scheduler"):
        run_sample(sd_unet, Conditioning(positive), Conditioning(negative), scheduler="beta")


def test_per_step_noise_is_seeded_apart_from_the_initial_noise() -> None:
    like = torch.zeros(LATENT)
    sigmas = sampling_sigmas(
        values.NoiseSchedule(), steps=4, denoise=1.0, scheduler="karras", sampler="euler"
    )
    ancestral = step_noise_sampler("euler_ancestral", 5, like, sigmas)
    brownian = step_noise_sampler("dpmpp_sde", 5, like, sigmas)
    assert step_noise_sampler("euler", 5, like, sigmas) is None
    assert ancestral is not None and brownian is not None
    first = ancestral(float(sigmas[0]), float(sigmas[1]))
    # ComfyUI on a CPU would reuse the initial noise here; we draw from seed + 1.
    assert not torch.allclose(first, initial_noise(5, LATENT))
    assert torch.equal(first, initial_noise(6, LATENT))
    assert torch.equal(
        brownian(float(sigmas[1]), float(sigmas[2])),
        step_noise_sampler("dpmpp_sde", 5, like, sigmas)(float(sigmas[1]), float(sigmas[2])),
    )
