"""One KSampler run: noise a latent, build the guided denoiser, and walk the chosen sampler down to 0.

Seeds behave as in ComfyUI: the initial noise is one CPU `randn` for the whole batch from a
generator seeded with `seed`. Per-step noise (ancestral and SDE samplers) is drawn on the CPU as
well, from `seed + 1`, so a seed gives the same image on every device. (ComfyUI draws it from
`seed` on the latent's device; on a CPU that makes the first ancestral noise equal to the
initial noise, a correlation we avoid.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from nodes.sd.denoiser import CFGDenoiser, InpaintDenoiser, UNetDenoiser
from nodes.sd.noise import (
    NoiseSampler,
    ancestral_noise_sampler,
    brownian_noise_sampler,
    comfy_brownian_noise_sampler,
    initial_noise,
)
from nodes.sd.sampler_steps import Denoiser
from nodes.sd.samplers import ANCESTRAL_SAMPLERS, SAMPLERS, SDE_SAMPLERS
from nodes.sd.schedules import SCHEDULERS, discrete_schedule, sampling_sigmas
from nodes.sd.values import Conditioning, Latent, UNetModel

StepHook = Callable[[int, int, torch.Tensor], None]

_SEED_SPAN = 2**64


def step_noise_sampler(
    sampler_name: str,
    seed: int,
    like: torch.Tensor,
    sigmas: torch.Tensor,
    convention: str = "latentgraph",
) -> NoiseSampler | None:
    """The seeded per-step noise a sampler needs, or None for the deterministic ones.

    The "comfyui" convention seeds it with `seed` itself, as ComfyUI does on the CPU.
    """
    comfy = convention == "comfyui"
    step_seed = seed if comfy else (seed + 1) % _SEED_SPAN
    if sampler_name in ANCESTRAL_SAMPLERS:
        return ancestral_noise_sampler(step_seed, like)
    if sampler_name in SDE_SAMPLERS:
        positive = sigmas[sigmas > 0]
        if comfy:
            return comfy_brownian_noise_sampler(step_seed, like, positive.min(), sigmas.max())
        return brownian_noise_sampler(step_seed, like, float(positive.min()), float(positive.max()))
    return None


def step_window(
    sigmas: torch.Tensor, start_step: int, end_step: int | None, leftover_noise: bool
) -> torch.Tensor:
    """KSamplerAdvanced's slice of a schedule: steps start..end, ending at 0 unless leftover noise.

    An empty result means there is nothing to do (start at or past the last step).
    """
    if end_step is not None and end_step < len(sigmas) - 1:
        sigmas = sigmas[: end_step + 1].clone()
        if not leftover_noise:
            sigmas[-1] = 0.0
    if start_step > 0:
        if start_step >= len(sigmas) - 1:
            return sigmas[:0]
        sigmas = sigmas[start_step:]
    return sigmas


def is_full_denoise(sigma_start: float, sigma_max: float) -> bool:
    """Whether a schedule starts at the model's top noise level (ComfyUI's `max_denoise`)."""
    return math.isclose(sigma_start, sigma_max, rel_tol=1e-5) or sigma_start > sigma_max


def sample(
    model: UNetModel,
    positive: Conditioning,
    negative: Conditioning,
    latent: Latent,
    *,
    seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    denoise: float = 1.0,
    on_step: StepHook | None = None,
    start_step: int = 0,
    end_step: int | None = None,
    add_noise: bool = True,
    leftover_noise: bool = False,
    convention: str = "latentgraph",
    compile_models: bool = False,
) -> Latent:
    """Denoise `latent` with the named sampler and scheduler; returns new latents, float32.

    `on_step(step_index, total_steps, denoised_x0)` runs after the model call of every step; an
    exception raised there stops sampling and propagates. With denoise < 1 the start is
    latent + noise * sigma_0. From the top of the schedule it is latent + noise * sqrt(1 + sigma_max^2),
    the variance of pure noise in this parameterisation, as in ComfyUI and diffusers' default
    ("leading") Euler configuration. A `noise_mask` keeps the unmasked latent (see InpaintDenoiser).

    `start_step`, `end_step`, `add_noise` and `leftover_noise` are KSamplerAdvanced's: run only
    part of the schedule, from the latent as it is, and stop with the remaining noise in it.
    `convention="comfyui"` gives the UNet the nearest trained timestep and seeds per-step noise
    as ComfyUI does on the CPU, so that a seed reproduces ComfyUI's picture.
    `compile_models` runs the UNet and ControlNet forwards through torch.compile (see compiled.py).
    """
    if sampler_name not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler_name!r}; use one of {', '.join(SAMPLERS)}")
    if scheduler not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {scheduler!r}; use one of {', '.join(SCHEDULERS)}")
    sigmas = sampling_sigmas(
        model.schedule, steps=steps, denoise=denoise, scheduler=scheduler, sampler=sampler_name
    )
    sigmas = step_window(sigmas, start_step, end_step, leftover_noise)
    if len(sigmas) < 2:
        return Latent(samples=latent.samples.clone(), noise_mask=latent.noise_mask)

    unet_denoiser = UNetDenoiser(
        model, nearest_timestep=convention == "comfyui", compile_models=compile_models
    )
    device = unet_denoiser.device
    latent_image = latent.samples.to(device=device, dtype=torch.float32)  # (B, 4, h, w)
    noise = initial_noise(seed, latent_image.shape, device=device)
    if not add_noise:
        noise = torch.zeros_like(noise)
    denoiser: Denoiser = CFGDenoiser(
        unet_denoiser, positive, negative, cfg, interval=model.guidance_interval
    )
    if latent.noise_mask is not None:
        # ComfyUI's ddim re-noises the kept region with separate noise from seed + 1.
        held_noise = (
            initial_noise((seed + 1) % _SEED_SPAN, latent_image.shape, device=device)
            if sampler_name == "ddim"
            else noise
        )
        denoiser = InpaintDenoiser(denoiser, latent_image, held_noise, latent.noise_mask)

    sigma_start = float(sigmas[0])
    if is_full_denoise(sigma_start, discrete_schedule(model.schedule).sigma_max):
        x = latent_image + noise * math.sqrt(1.0 + sigma_start**2)
    else:
        x = latent_image + noise * sigma_start

    total = len(sigmas) - 1
    callback = None
    if on_step is not None:
        hook = on_step

        def callback(info: dict[str, Any]) -> None:
            hook(info["i"], total, info["denoised"])

    with torch.no_grad():
        x = SAMPLERS[sampler_name](
            denoiser,
            x,
            sigmas.to(device),
            callback=callback,
            noise_sampler=step_noise_sampler(sampler_name, seed, x, sigmas, convention),
        )
    return Latent(
        samples=x.to(device=latent.samples.device, dtype=torch.float32),
        noise_mask=latent.noise_mask,
    )
