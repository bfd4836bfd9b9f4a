"""k-diffusion-style samplers: small pure functions that walk a list of sigmas down to 0.

Every sampler has the shape `sample_x(model, x, sigmas, *, extra_args, callback, noise_sampler)`,
where `model(x, sigma, **extra_args)` returns the denoised x0 for a batch (sigma has shape (B,)).
The solvers know nothing about UNets, guidance or conditioning; `denoiser.py` supplies `model`.
The protocols and shared step pieces are in sampler_steps.py, UniPC in unipc.py; `SAMPLERS`
names them all.
All work in the variance-exploding form x = x0 + sigma * eps (Karras et al., 2022), with
lambda = -log(sigma) as the log signal-to-noise time where the DPM-Solver family needs one.

`callback`, when given, receives {"i", "x", "sigma", "denoised"} once per step, before the step
is applied; raising from it stops sampling (that is how cancellation works).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import torch

from nodes.sd.noise import NoiseSampler
from nodes.sd.sampler_steps import (
    Denoiser,
    Sampler,
    StepCallback,
    default_brownian_noise,
    default_noise,
    denoise_at,
    get_ancestral_step,
    report_step,
    sigma_levels,
    to_d,
)
from nodes.sd.unipc import sample_uni_pc, sample_uni_pc_bh2


def sample_euler(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: StepCallback | None = None,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """Implements Algorithm 2 (Euler steps) from Karras et al. (2022), without churn."""
    extra_args = extra_args or {}
    for i, (sigma, sigma_next) in enumerate(pairwise(sigma_levels(sigmas))):
        denoised = denoise_at(model, x, sigma, extra_args)
        report_step(callback, i, x, sigma, denoised)
        # Euler step along the ODE
        x = x + to_d(x, sigma, denoised) * (sigma_next - sigma)
    return x


def sample_euler_ancestral(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: StepCallback | None = None,
    noise_sampler: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> torch.Tensor:
    """Ancestral sampling with Euler method steps (k-diffusion's Euler a; DDPM noise per step)."""
    extra_args = extra_args or {}
    noise = noise_sampler or default_noise(x)
    for i, (sigma, sigma_next) in enumerate(pairwise(sigma_levels(sigmas))):
        denoised = denoise_at(model, x, sigma, extra_args)
        report_step(callback, i, x, sigma, denoised)
        sigma_down, sigma_up = get_ancestral_step(sigma, sigma_next, eta)
        # Euler step down to sigma_down
        x = x + to_d(x, sigma, denoised) * (sigma_down - sigma)
        # Add fresh noise back up to sigma_next
        if sigma_next > 0 and sigma_up:
            x = x + noise(sigma, sigma_next) * (s_noise * sigma_up)
    return x


def sample_heun(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: StepCallback | None = None,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """Implements Algorithm 2 (Heun steps) from Karras et al. (2022), without churn."""
    extra_args = extra_args or {}
    for i, (sigma, sigma_next) in enumerate(pairwise(sigma_levels(sigmas))):
        denoised = denoise_at(model, x, sigma, extra_args)
        report_step(callback, i, x, sigma, denoised)
        d = to_d(x, sigma, denoised)
        dt = sigma_next - sigma
        if sigma_next == 0:
            # Euler method for the last step: the derivative at sigma = 0 is undefined
            x = x + d * dt
            continue
        # Heun's method: average the slopes at both ends
        x_next = x + d * dt
        d_next = to_d(x_next, sigma_next, denoise_at(model, x_next, sigma_next, extra_args))
        x = x + (d + d_next) * (dt / 2)
    return x


def sample_dpm_2(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: StepCallback | None = None,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """A sampler inspired by DPM-Solver-2 and Algorithm 2 from Karras et al. (2022) (k-diffusion's DPM2)."""
    extra_args = extra_args or {}
    for i, (sigma, sigma_next) in enumerate(pairwise(sigma_levels(sigmas))):
        denoised = denoise_at(model, x, sigma, extra_args)
        report_step(callback, i, x, sigma, denoised)
        d = to_d(x, sigma, denoised)
        if sigma_next == 0:
            # Euler method for the last step
            x = x + d * (sigma_next - sigma)
            continue
        # Midpoint method, with the midpoint taken in log sigma
        sigma_mid = math.sqrt(sigma * sigma_next)
        x_mid = x + d * (sigma_mid - sigma)
        d_mid = to_d(x_mid, sigma_mid, denoise_at(model, x_mid, sigma_mid, extra_args))
        x = x + d_mid * (sigma_next - sigma)
    return x


def _lms_coefficient(order: int, levels: Sequence[float], i: int, j: int) -> float:
    """Integral over [sigma_i, sigma_i+1] of the Lagrange basis polynomial through past sigma i - j."""
    others = [levels[i - k] for k in range(order) if k != j]
    basis = np.polynomial.Polynomial([1.0])
    for other in others:
        basis = basis * np.polynomial.Polynomial([-other, 1.0]) / (levels[i - j] - other)
    antiderivative = basis.integ()
    return float(antiderivative(levels[i + 1]) - antiderivative(levels[i]))


def sample_lms(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: StepCallback | None = None,
    noise_sampler: NoiseSampler | None = None,
    order: int = 4,
) -> torch.Tensor:
    """Linear multistep method (Adams-Bashforth in sigma) over past ODE derivatives, as in k-diffusion."""
    extra_args = extra_args or {}
    levels = sigma_levels(sigmas)
    history: list[torch.Tensor] = []  # newest last
    for i, sigma in enumerate(levels[:-1]):
        denoised = denoise_at(model, x, sigma, extra_args)
        report_step(callback, i, x, sigma, denoised)
        history = [*history, to_d(x, sigma, denoised)][-order:]
        step_order = min(i + 1, order)
        # Integrate the polynomial through the last `step_order` derivatives exactly
        for j, derivative in enumerate(reversed(history[-step_order:])):
            x = x + _lms_coefficient(step_order, levels, i, j) * derivative
    return x


def sample_dpmpp_2m(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: StepCallback | None = None,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2M), the multistep second-order data-prediction solver of Lu et al. (2022)."""
    extra_args = extra_args or {}
    levels = sigma_levels(sigmas)
    old_denoised: torch.Tensor | None = None
    for i, (sigma, sigma_next) in enumerate(pairwise(levels)):
        denoised = denoise_at(model, x, sigma, extra_args)
        report_step(callback, i, x, sigma, denoised)
        if sigma_next == 0:
            # The exact solution at sigma = 0 is the prediction itself
            x = denoised
        else:
            h = math.log(sigma) - math.log(sigma_next)  # step in lambda = -log sigma
            if old_denoised is None:
                denoised_d = denoised  # first step: DPM-Solver++(1), i.e. DDIM
            else:
                # Second order: extrapolate x0 linearly in lambda from the previous step
                r = (math.log(levels[i - 1]) - math.log(sigma)) / h
                denoised_d = denoised + (denoised - old_denoised) / (2 * r)
            x = (sigma_next / sigma) * x - math.expm1(-h) * denoised_d
        old_denoised = denoised
    return x


def sample_dpmpp_2m_sde(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: StepCallback | None = None,
    noise_sampler: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    solver_type: str = "midpoint",
) -> torch.Tensor:
    """DPM-Solver++(2M) SDE, the stochastic multistep solver of Lu et al. (2022), midpoint variant."""
    if solver_type not in ("midpoint", "heun"):
        raise ValueError(f"solver_type must be 'midpoint' or 'heun', got {solver_type!r}")
    extra_args = extra_args or {}
    levels = sigma_levels(sigmas)
    noise = noise_sampler or default_brownian_noise(x, levels, eta)
    old_denoised: torch.Tensor | None = None
    h_last = 0.0
    for i, (sigma, sigma_next) in enumerate(pairwise(levels)):
        denoised = denoise_at(model, x, sigma, extra_args)
        report_step(callback, i, x, sigma, denoised)
        if sigma_next == 0:
            # Denoising step
            x = denoised
        else:
            h = math.log(sigma) - math.log(sigma_next)
            eta_h = eta * h
            # First-order exponential integrator step of the SDE (DPM-Solver++(1) SDE)
            decay = -math.expm1(-h - eta_h)
            x = (sigma_next / sigma) * math.exp(-eta_h) * x + decay * denoised
            if old_denoised is not None:
                # Second-order correction from the previous prediction
                difference = (denoised - old_denoised) * (h / h_last)
                if solver_type == "heun":
                    x = x + (decay / (-h - eta_h) + 1) * difference
                else:
                    x = x + 0.5 * decay * difference
            if eta:
                # Inject the noise the SDE adds over this step
                x = x + noise(sigma, sigma_next) * (
                    sigma_next * math.sqrt(-math.expm1(-2 * eta_h)) * s_noise
                )
            h_last = h
        old_denoised = denoised
    return x


def sample_dpmpp_sde(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: StepCallback | None = None,
    noise_sampler: NoiseSampler | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    r: float = 0.5,
) -> torch.Tensor:
    """DPM-Solver++ (stochastic), k-diffusion's DPM++ SDE: a two-stage solver of Lu et al. (2022)."""
    extra_args = extra_args or {}
    levels = sigma_levels(sigmas)
    noise = noise_sampler or default_brownian_noise(x, levels, eta)
    for i, (sigma, sigma_next) in enumerate(pairwise(levels)):
        denoised = denoise_at(model, x, sigma, extra_args)
        report_step(callback, i, x, sigma, denoised)
        if sigma_next == 0:
            # Euler method for the last step
            x = x + to_d(x, sigma, denoised) * (sigma_next - sigma)
            continue
        lam, lam_next = -math.log(sigma), -math.log(sigma_next)
        h = lam_next - lam
        sigma_mid = math.exp(-(lam + h * r))
        # Stage 1: ancestral DPM-Solver++(1) step to the intermediate sigma
        sigma_down, sigma_up = get_ancestral_step(sigma, sigma_mid, eta)
        x_mid = (sigma_down / sigma) * x - math.expm1(lam + math.log(sigma_down)) * denoised
        if sigma_up:
            x_mid = x_mid + noise(sigma, sigma_mid) * (s_noise * sigma_up)
        denoised_mid = denoise_at(model, x_mid, sigma_mid, extra_args)
        # Stage 2: ancestral step to sigma_next with x0 blended from both evaluations
        sigma_down, sigma_up = get_ancestral_step(sigma, sigma_next, eta)
        weight = 1 / (2 * r)
        denoised_d = (1 - weight) * denoised + weight * denoised_mid
        x = (sigma_down / sigma) * x - math.expm1(lam + math.log(sigma_down)) * denoised_d
        if sigma_up:
            x = x + noise(sigma, sigma_next) * (s_noise * sigma_up)
    return x


def sample_ddim(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: StepCallback | None = None,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """Deterministic DDIM (Song et al., 2021, eta = 0) on the given sigmas.

    In the sigma parameterisation a DDIM step keeps the predicted x0 and re-noises it with the
    predicted eps at the next level, which is exactly an Euler step; ComfyUI's `ddim` is Euler too.
    """
    extra_args = extra_args or {}
    for i, (sigma, sigma_next) in enumerate(pairwise(sigma_levels(sigmas))):
        denoised = denoise_at(model, x, sigma, extra_args)
        report_step(callback, i, x, sigma, denoised)
        # x_next = x0 + sigma_next * eps, with eps = (x - x0) / sigma
        eps = (x - denoised) / sigma
        x = denoised + eps * sigma_next
    return x


SAMPLERS: dict[str, Sampler] = {
    "euler": sample_euler,
    "euler_ancestral": sample_euler_ancestral,
    "heun": sample_heun,
    "dpm_2": sample_dpm_2,
    "lms": sample_lms,
    "dpmpp_2m": sample_dpmpp_2m,
    "dpmpp_2m_sde": sample_dpmpp_2m_sde,
    "dpmpp_sde": sample_dpmpp_sde,
    "ddim": sample_ddim,
    "uni_pc": sample_uni_pc,
    "uni_pc_bh2": sample_uni_pc_bh2,
}

# Which samplers draw per-step noise, and of which kind (see noise.py).
ANCESTRAL_SAMPLERS = frozenset({"euler_ancestral"})
SDE_SAMPLERS = frozenset({"dpmpp_2m_sde", "dpmpp_sde"})
