"""`sample()` against diffusers' own pipelines, fp32 on CPU, with tiny random-weight models.

Scheduler mapping: ComfyUI's "normal" schedule is diffusers' EulerDiscreteScheduler with
`timestep_spacing="linspace"` (timesteps linspace(999, 0, n); `steps_offset` only matters for
"leading"). diffusers interpolates sigma linearly and ComfyUI log-linearly between training
steps, so they are identical when every timestep is a whole number: 999 / (n - 1) integral,
e.g. n = 10. "karras" is the same config with `use_karras_sigmas=True`.

Initial noise: we start full denoises at noise * sqrt(1 + sigma_max^2), as ComfyUI and diffusers'
default "leading" spacing do; with "linspace" diffusers uses noise * sigma_max instead. The tests
hand the pipeline latents scaled so that its starting point equals ours.

Conditioning: the random UNet's last layer is scaled down (x0.2). Its eps predictions are not
related to the noise, so the latents stay at noise scale (|x| up to ~50) and CFG 7.5 amplifies
rounding: measured, a 1e-7 relative change of diffusers' own input latents moves its output by
~1e-4 with the unscaled layer and ~2.5e-5 with the scaled one. The scaled model leaves the
1e-4 tolerance above that float32 floor, so a failure means a real difference.
"""

from __future__ import annotations

import math
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from diffusers import (
    ControlNetModel,
    EulerDiscreteScheduler,
    StableDiffusionControlNetPipeline,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)

from nodes.sd import values
from nodes.sd.noise import initial_noise
from nodes.sd.sample import sample
from nodes.sd.schedules import sampling_sigmas
from nodes.sd.values import (
    Conditioning,
    ControlApplication,
    Latent,
    UNetModel,
)
from tests.sd.sampling_setup import (
    EULER_LINSPACE,
    LATENT,
    TOLERANCE,
    assert_parity,
    feeding_pipeline,
    matching_start,
    seeded_randn,
)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_txt2img_euler_normal_matches_stable_diffusion_pipeline(
    sd_unet: UNet2DConditionModel, embeds: tuple[torch.Tensor, torch.Tensor], prediction: str
) -> None:
    positive, negative = embeds
    seed, steps = 7, 10
    ours = sample(
        UNetModel(sd_unet, "sd1", prediction_type=prediction),  # type: ignore[arg-type]
        Conditioning(positive),
        Conditioning(negative),
        Latent(torch.zeros(LATENT)),
        seed=seed,
        steps=steps,
        cfg=7.5,
        sampler_name="euler",
        scheduler="normal",
    )
    scheduler = EulerDiscreteScheduler(**EULER_LINSPACE, prediction_type=prediction)
    noise = initial_noise(seed, LATENT)
    pipe = feeding_pipeline(StableDiffusionPipeline, sd_unet, scheduler)
    call = {
        "prompt_embeds": positive,
        "negative_prompt_embeds": negative,
        "num_inference_steps": steps,
        "guidance_scale": 7.5,
        "output_type": "latent",
        "height": 64,
        "width": 64,
    }
    reference = pipe(latents=matching_start(noise, scheduler, steps), **call).images
    assert_parity(ours.samples, reference)
    # The start scaling matters: diffusers' own linspace start (sigma_max) lands elsewhere.
    plain = pipe(latents=noise, **call).images
    assert (ours.samples - plain).abs().max().item() > 10 * TOLERANCE


def test_txt2img_euler_karras_matches_karras_sigmas(
    sd_unet: UNet2DConditionModel, embeds: tuple[torch.Tensor, torch.Tensor]
) -> None:
    positive, negative = embeds
    seed, steps = 8, 12
    ours = sample(
        UNetModel(sd_unet, "sd1"),
        Conditioning(positive),
        Conditioning(negative),
        Latent(torch.zeros(LATENT)),
        seed=seed,
        steps=steps,
        cfg=6.0,
        sampler_name="euler",
        scheduler="karras",
    )
    scheduler = EulerDiscreteScheduler(**EULER_LINSPACE, use_karras_sigmas=True)
    reference = feeding_pipeline(StableDiffusionPipeline, sd_unet, scheduler)(
        prompt_embeds=positive,
        negative_prompt_embeds=negative,
        latents=matching_start(initial_noise(seed, LATENT), scheduler, steps),
        num_inference_steps=steps,
        guidance_scale=6.0,
        output_type="latent",
        height=64,
        width=64,
    ).images
    assert_parity(ours.samples, reference)


def test_cfg_one_skips_the_uncond_pass_and_matches_the_pipeline(
    sd_unet: UNet2DConditionModel,
    embeds: tuple[torch.Tensor, torch.Tensor],
    unet_batches: list[int],
) -> None:
    positive, negative = embeds
    seed, steps = 9, 10
    ours = sample(
        UNetModel(sd_unet, "sd1"),
        Conditioning(positive),
        Conditioning(torch.full_like(negative, math.nan)),  # would poison the result if used
        Latent(torch.zeros(LATENT)),
        seed=seed,
        steps=steps,
        cfg=1.0,
        sampler_name="euler",
        scheduler="normal",
    )
    assert unet_batches == [1] * steps
    scheduler = EulerDiscreteScheduler(**EULER_LINSPACE)
    reference = feeding_pipeline(StableDiffusionPipeline, sd_unet, scheduler)(
        prompt_embeds=positive,
        negative_prompt_embeds=negative,
        latents=matching_start(initial_noise(seed, LATENT), scheduler, steps),
        num_inference_steps=steps,
        guidance_scale=1.0,
        output_type="latent",
        height=64,
        width=64,
    ).images
    assert_parity(ours.samples, reference)


def test_img2img_at_denoise_0_6_matches_img2img_pipeline(
    sd_unet: UNet2DConditionModel, embeds: tuple[torch.Tensor, torch.Tensor]
) -> None:
    positive, negative = embeds
    seed = 21
    start = seeded_randn(*LATENT, seed=22)  # an "encoded image", already scaled
    ours = sample(
        UNetModel(sd_unet, "sd1"),
        Conditioning(positive),
        Conditioning(negative),
        Latent(start),
        seed=seed,
        steps=6,
        cfg=7.5,
        sampler_name="euler",
        scheduler="normal",
        denoise=0.6,
    )
    # ComfyUI: 6 steps at denoise 0.6 are the last 6 of int(6 / 0.6) = 10. diffusers: strength
    # 0.6 of 10 steps keeps int(10 * 0.6) = 6, noising with one CPU randn of the same seed.
    reference = feeding_pipeline(
        StableDiffusionImg2ImgPipeline, sd_unet, EulerDiscreteScheduler(**EULER_LINSPACE)
    )(
        prompt_embeds=positive,
        negative_prompt_embeds=negative,
        image=start,
        strength=0.6,
        num_inference_steps=10,
        guidance_scale=7.5,
        generator=torch.Generator().manual_seed(seed),
        output_type="latent",
    ).images
    assert_parity(ours.samples, reference)


@pytest.mark.parametrize("count", [1, 2])
def test_controlnet_matches_controlnet_pipeline(
    sd_unet: UNet2DConditionModel,
    controlnets: tuple[ControlNetModel, ControlNetModel],
    embeds: tuple[torch.Tensor, torch.Tensor],
    hints: tuple[torch.Tensor, torch.Tensor],
    count: int,
) -> None:
    positive, negative = embeds
    seed, steps = 31, 10
    strengths = [0.8, 0.5][:count]
    apps = tuple(
        ControlApplication(values.ControlNetModel(net), hint, strength)
        for net, hint, strength in zip(controlnets[:count], hints[:count], strengths, strict=True)
    )
    ours = sample(
        UNetModel(sd_unet, "sd1"),
        Conditioning(positive, controls=apps),
        Conditioning(negative, controls=apps),
        Latent(torch.zeros(LATENT)),
        seed=seed,
        steps=steps,
        cfg=7.5,
        sampler_name="euler",
        scheduler="normal",
    )
    scheduler = EulerDiscreteScheduler(**EULER_LINSPACE)
    single = count == 1
    pipe = feeding_pipeline(
        StableDiffusionControlNetPipeline,
        sd_unet,
        scheduler,
        controlnet=controlnets[0] if single else list(controlnets[:count]),
    )
    reference = pipe(
        prompt_embeds=positive,
        negative_prompt_embeds=negative,
        image=hints[0] if single else list(hints[:count]),
        controlnet_conditioning_scale=strengths[0] if single else strengths,
        latents=matching_start(initial_noise(seed, LATENT), scheduler, steps),
        num_inference_steps=steps,
        guidance_scale=7.5,
        output_type="latent",
        height=64,
        width=64,
    ).images
    assert_parity(ours.samples, reference)
    plain = sample(
        UNetModel(sd_unet, "sd1"),
        Conditioning(positive),
        Conditioning(negative),
        Latent(torch.zeros(LATENT)),
        seed=seed,
        steps=steps,
        cfg=7.5,
        sampler_name="euler",
        scheduler="normal",
    )
    assert (plain.samples - ours.samples).abs().max().item() > 100 * TOLERANCE


def test_sdxl_matches_stable_diffusion_xl_pipeline(sdxl_unet: UNet2DConditionModel) -> None:
    positive, negative = seeded_randn(1, 77, 64, seed=40), seeded_randn(1, 77, 64, seed=41)
    pooled, negative_pooled = seeded_randn(1, 32, seed=42), seeded_randn(1, 32, seed=43)
    seed, steps = 44, 10
    ours = sample(
        UNetModel(sdxl_unet, "sdxl"),
        Conditioning(positive, pooled),
        Conditioning(negative, negative_pooled),
        Latent(torch.zeros(LATENT)),
        seed=seed,
        steps=steps,
        cfg=7.5,
        sampler_name="euler",
        scheduler="normal",
    )
    # The pipeline's default size conditioning is ours: original = target = 64 x 64, no crop.
    scheduler = EulerDiscreteScheduler(**EULER_LINSPACE)
    reference = feeding_pipeline(StableDiffusionXLPipeline, sdxl_unet, scheduler)(
        prompt_embeds=positive,
        negative_prompt_embeds=negative,
        pooled_prompt_embeds=pooled,
        negative_pooled_prompt_embeds=negative_pooled,
        latents=matching_start(initial_noise(seed, LATENT), scheduler, steps),
        num_inference_steps=steps,
        guidance_scale=7.5,
        output_type="latent",
        height=64,
        width=64,
    ).images
    assert_parity(ours.samples, reference)


def test_txt2img_at_fractional_timesteps_matches_the_pipeline_given_our_sigmas(
    sd_unet: UNet2DConditionModel, embeds: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """At 8 steps 999 / 7 is not whole, so the UNet sees fractional timesteps.

    diffusers' own "linspace" sigmas interpolate linearly there (ours, like ComfyUI's,
    log-linearly), so the pipeline is handed our sigmas; it turns them into timesteps by
    log-linear interpolation, as we do. What is compared is the fractional-timestep path.
    """
    positive, negative = embeds
    seed, steps = 5, 8
    ours = sample(
        UNetModel(sd_unet, "sd1"),
        Conditioning(positive),
        Conditioning(negative),
        Latent(torch.zeros(LATENT)),
        seed=seed,
        steps=steps,
        cfg=7.5,
        sampler_name="euler",
        scheduler="normal",
    )
    sigmas = sampling_sigmas(
        values.NoiseSchedule(), steps=steps, denoise=1.0, scheduler="normal", sampler="euler"
    ).tolist()
    scheduler = EulerDiscreteScheduler(**EULER_LINSPACE)
    scheduler.set_timesteps(sigmas=sigmas)
    fractional = scheduler.timesteps - scheduler.timesteps.round()
    assert (fractional.abs() > 0.01).sum() >= steps - 2  # all but the ends are fractional
    start = initial_noise(seed, LATENT) * math.sqrt(1 + sigmas[0] ** 2) / sigmas[0]
    reference = feeding_pipeline(StableDiffusionPipeline, sd_unet, scheduler)(
        prompt_embeds=positive,
        negative_prompt_embeds=negative,
        latents=start,  # the pipeline multiplies by init_noise_sigma, here sigma_max
        sigmas=sigmas,
        guidance_scale=7.5,
        output_type="latent",
        height=64,
        width=64,
    ).images
    assert_parity(ours.samples, reference)
