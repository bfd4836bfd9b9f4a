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
from collections.abc import Iterator
from typing import Any

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

TOLERANCE = 1e-4
LATENT = (1, 4, 8, 8)  # 64 x 64 pixels
EULER_LINSPACE = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "timestep_spacing": "linspace",
    "steps_offset": 1,
}


def _quiet_last_layer(unet: UNet2DConditionModel) -> UNet2DConditionModel:
    with torch.no_grad():
        unet.conv_out.weight.mul_(0.2)
        unet.conv_out.bias.mul_(0.2)
    return unet.eval()


@pytest.fixture(scope="module")
def sd_unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
    )
    return _quiet_last_layer(unet)


@pytest.fixture(scope="module")
def sdxl_unet() -> UNet2DConditionModel:
    torch.manual_seed(1)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,  # 6 size ids * 8 + pooled 32
        cross_attention_dim=64,
    )
    return _quiet_last_layer(unet)


def _controlnet(unet: UNet2DConditionModel, seed: int) -> ControlNetModel:
    torch.manual_seed(seed)
    controlnet = ControlNetModel.from_unet(
        unet, conditioning_embedding_out_channels=(16, 32, 32, 32)
    )
    # A fresh ControlNet's output convolutions are zero; give them weights so it does something.
    zero_initialised = [
        *controlnet.controlnet_down_blocks,
        controlnet.controlnet_mid_block,
        controlnet.controlnet_cond_embedding.conv_out,
    ]
    with torch.no_grad():
        for layer in zero_initialised:
            layer.weight.normal_(0.0, 0.05)
            layer.bias.normal_(0.0, 0.05)
    return controlnet.eval()


@pytest.fixture(scope="module")
def controlnets(sd_unet: UNet2DConditionModel) -> tuple[ControlNetModel, ControlNetModel]:
    return _controlnet(sd_unet, 2), _controlnet(sd_unet, 3)


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def embeds() -> tuple[torch.Tensor, torch.Tensor]:
    return _randn(1, 77, 32, seed=10), _randn(1, 77, 32, seed=11)


@pytest.fixture(scope="module")
def hints() -> tuple[torch.Tensor, torch.Tensor]:
    return _randn(1, 3, 64, 64, seed=12).sigmoid(), _randn(1, 3, 64, 64, seed=13).sigmoid()


def _pipeline(cls: Any, unet: UNet2DConditionModel, scheduler: Any, **components: Any) -> Any:
    """A diffusers pipeline fed with embeddings and latents directly (no text encoder or VAE)."""
    if cls is StableDiffusionXLPipeline:
        parts = {"text_encoder_2": None, "tokenizer_2": None, "add_watermarker": False}
    else:
        parts = {
            "safety_checker": None,
            "feature_extractor": None,
            "requires_safety_checker": False,
        }
    pipe = cls(
        vae=None,
        text_encoder=None,
        tokenizer=None,
        unet=unet,
        scheduler=scheduler,
        **parts,
        **components,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _matching_start(
    noise: torch.Tensor, scheduler: EulerDiscreteScheduler, steps: int
) -> torch.Tensor:
    """Latents that the pipeline's `latents * init_noise_sigma` turns into our starting point."""
    scheduler.set_timesteps(steps)
    sigma_max = float(torch.tensor(discrete_schedule(values.NoiseSchedule()).sigma_max).float())
    return noise * math.sqrt(1 + sigma_max**2) / float(scheduler.init_noise_sigma)


def _assert_parity(ours: torch.Tensor, reference: torch.Tensor) -> None:
    assert torch.isfinite(reference).all()
    difference = (ours - reference).abs().max().item()
    assert difference <= TOLERANCE, (
        f"max abs diff {difference:.3g} (reference max {reference.abs().max():.3g})"
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
    pipe = _pipeline(StableDiffusionPipeline, sd_unet, scheduler)
    call = {
        "prompt_embeds": positive,
        "negative_prompt_embeds": negative,
        "num_inference_steps": steps,
        "guidance_scale": 7.5,
        "output_type": "latent",
        "height": 64,
        "width": 64,
    }
    reference = pipe(latents=_matching_start(noise, scheduler, steps), **call).images
    _assert_parity(ours.samples, reference)
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
    reference = _pipeline(StableDiffusionPipeline, sd_unet, scheduler)(
        prompt_embeds=positive,
        negative_prompt_embeds=negative,
        latents=_matching_start(initial_noise(seed, LATENT), scheduler, steps),
        num_inference_steps=steps,
        guidance_scale=6.0,
        output_type="latent",
        height=64,
        width=64,
    ).images
    _assert_parity(ours.samples, reference)


@pytest.fixture
def unet_batches(sd_unet: UNet2DConditionModel) -> Iterator[list[int]]:
    """The batch size of every UNet forward made while the test runs."""
    sizes: list[int] = []
    handle = sd_unet.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    yield sizes
    handle.remove()


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
    reference = _pipeline(StableDiffusionPipeline, sd_unet, scheduler)(
        prompt_embeds=positive,
        negative_prompt_embeds=negative,
        latents=_matching_start(initial_noise(seed, LATENT), scheduler, steps),
        num_inference_steps=steps,
        guidance_scale=1.0,
        output_type="latent",
        height=64,
        width=64,
    ).images
    _assert_parity(ours.samples, reference)


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


def test_img2img_at_denoise_0_6_matches_img2img_pipeline(
    sd_unet: UNet2DConditionModel, embeds: tuple[torch.Tensor, torch.Tensor]
) -> None:
    positive, negative = embeds
    seed = 21
    start = _randn(*LATENT, seed=22)  # an "encoded image", already scaled
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
    reference = _pipeline(
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
    _assert_parity(ours.samples, reference)


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
    pipe = _pipeline(
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
        latents=_matching_start(initial_noise(seed, LATENT), scheduler, steps),
        num_inference_steps=steps,
        guidance_scale=7.5,
        output_type="latent",
        height=64,
        width=64,
    ).images
    _assert_parity(ours.samples, reference)
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
    positive, negative = _randn(1, 77, 64, seed=40), _randn(1, 77, 64, seed=41)
    pooled, negative_pooled = _randn(1, 32, seed=42), _randn(1, 32, seed=43)
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
    reference = _pipeline(StableDiffusionXLPipeline, sdxl_unet, scheduler)(
        prompt_embeds=positive,
        negative_prompt_embeds=negative,
        pooled_prompt_embeds=pooled,
        negative_pooled_prompt_embeds=negative_pooled,
        latents=_matching_start(initial_noise(seed, LATENT), scheduler, steps),
        num_inference_steps=steps,
        guidance_scale=7.5,
        output_type="latent",
        height=64,
        width=64,
    ).images
    _assert_parity(ours.samples, reference)


def test_sdxl_without_pooled_embeddings_is_an_error(sdxl_unet: UNet2DConditionModel) -> None:
    with pytest.raises(ValueError, match="pooled"):
        sample(
            UNetModel(sdxl_unet, "sdxl"),
            Conditioning(_randn(1, 77, 64, seed=1)),
            Conditioning(_randn(1, 77, 64, seed=2)),
            Latent(torch.zeros(LATENT)),
            seed=0,
            steps=2,
            cfg=7.5,
            sampler_name="euler",
            scheduler="normal",
        )


def _run(
    unet: UNet2DConditionModel, positive: Conditioning, negative: Conditioning, **kw: Any
) -> torch.Tensor:
    settings: dict[str, Any] = {
        "seed": 5,
        "steps": 10,
        "cfg": 7.5,
        "sampler_name": "euler",
        "scheduler": "normal",
    }
    latent = kw.pop("latent", Latent(torch.zeros(LATENT)))
    return sample(UNetModel(unet, "sd1"), positive, negative, latent, **(settings | kw)).samples


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
        _run(
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
        gated = _run(
            sd_unet,
            Conditioning(positive, controls=(never,)),
            Conditioning(negative, controls=(never,)),
        )
        assert calls == []
        assert torch.equal(gated, _run(sd_unet, Conditioning(positive), Conditioning(negative)))
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
        one_sided = _run(
            sd_unet, Conditioning(positive, controls=(app,)), Conditioning(negative), steps=4
        )
    finally:
        handle.remove()
    assert calls == [1] * 4
    both = _run(
        sd_unet,
        Conditioning(positive, controls=(app,)),
        Conditioning(negative, controls=(app,)),
        steps=4,
    )
    neither = _run(sd_unet, Conditioning(positive), Conditioning(negative), steps=4)
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
            _run(
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
    start = _randn(*LATENT, seed=50)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4] = 1.0  # resample the left half
    out = _run(
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
    start = _randn(*LATENT, seed=51)
    # A low-resolution mask is resized to the latent, as ComfyUI does.
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    results = {
        name: _run(
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
    unmasked = _run(sd_unet, Conditioning(positive), Conditioning(negative), latent=Latent(start))
    ddim_unmasked = _run(
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
    _run(
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
        _run(
            sd_unet, Conditioning(positive), Conditioning(negative), steps=20, on_step=cancel_at_two
        )
    assert len(unet_batches) == 3


def test_denoise_zero_returns_the_latent_unchanged(
    sd_unet: UNet2DConditionModel,
    embeds: tuple[torch.Tensor, torch.Tensor],
    unet_batches: list[int],
) -> None:
    positive, negative = embeds
    start = _randn(*LATENT, seed=60)
    out = _run(
        sd_unet, Conditioning(positive), Conditioning(negative), latent=Latent(start), denoise=0.0
    )
    assert torch.equal(out, start) and unet_batches == []


def test_the_first_image_of_a_batch_is_the_single_image_of_the_same_seed(
    sd_unet: UNet2DConditionModel, embeds: tuple[torch.Tensor, torch.Tensor]
) -> None:
    positive, negative = embeds
    batch = _run(
        sd_unet,
        Conditioning(positive),
        Conditioning(negative),
        latent=Latent(torch.zeros(2, 4, 8, 8)),
    )
    single = _run(sd_unet, Conditioning(positive), Conditioning(negative))
    torch.testing.assert_close(batch[:1], single, rtol=0, atol=TOLERANCE)
    assert (batch[1] - batch[0]).abs().max() > 1.0


@pytest.mark.parametrize("sampler_name", ["euler_ancestral", "dpmpp_2m_sde"])
def test_stochastic_samplers_are_reproducible_from_the_seed(
    sd_unet: UNet2DConditionModel, embeds: tuple[torch.Tensor, torch.Tensor], sampler_name: str
) -> None:
    positive, negative = embeds
    first = _run(
        sd_unet, Conditioning(positive), Conditioning(negative), sampler_name=sampler_name, steps=4
    )
    again = _run(
        sd_unet, Conditioning(positive), Conditioning(negative), sampler_name=sampler_name, steps=4
    )
    other = _run(
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
    x, sigma = _randn(*LATENT, seed=70) * 3, torch.tensor([3.0])
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
        _run(sd_unet, Conditioning(positive), Conditioning(negative), sampler_name="dpm_fast")
    with pytest.raises(ValueError, match="unknown scheduler"):
        _run(sd_unet, Conditioning(positive), Conditioning(negative), scheduler="beta")


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
