"""k-diffusion-style samplers: small pure functions that walk a list of sigmas down to 0.

Every sampler has the shape `sample_x(model, x, sigmas, *, extra_args, callback, noise_sampler)`,
where `model(x, sigma, **extra_args)` returns the denoised x0 for a batch (sigma has shape (B,)).
The solvers know nothing about UNets, guidance or conditioning; `denoiser.py` supplies `model`.
All work in the variance-exploding form x = x0 + sigma * eps (Karras et al., 2022), with
lambda = -log(sigma) as the log signal-to-noise time where the DPM-Solver family needs one.

`callback`, when given, receives {"i", "x", "sigma", "denoised"} once per step, before the step
is applied; raising from it stops sampling (that is how cancellation works).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any, Protocol

import numpy as np
import torch

from nodes.sd.noise import NoiseSampler, brownian_noise_sampler

StepCallback = Callable[[dict[str, Any]], None]


class Denoiser(Protocol):
    """A model that predicts the clean sample x0 from a noisy x at noise level sigma."""

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **extra_args: Any) -> torch.Tensor: ...


class Sampler(Protocol):
    def __call__(
        self,
        model: Denoiser,
        x: torch.Tensor,
        sigmas: torch.Tensor,
        *,
        extra_args: dict[str, Any] | None = None,
        callback: StepCallback | None = None,
        noise_sampler: NoiseSampler | None = None,
    ) -> torch.Tensor: ...


def to_d(x: torch.Tensor, sigma: float, denoised: torch.Tensor) -> torch.Tensor:
    """The probability-flow ODE derivative dx/dsigma = (x - D(x, sigma)) / sigma."""
    return (x - denoised) / sigma


def get_ancestral_step(sigma_from: float, sigma_to: float, eta: float = 1.0) -> tuple[float, float]:
    """Split a step into a deterministic part down to sigma_down and fresh noise of size sigma_up.

    sigma_down^2 + sigma_up^2 = sigma_to^2; eta = 1 gives DDPM's ancestral step, eta = 0 none.
    """
    if not eta:
        return sigma_to, 0.0
    sigma_up = min(
        sigma_to, eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5
    )
    sigma_down = (sigma_to**2 - sigma_up**2) ** 0.5
    return sigma_down, sigma_up


def _denoise(
    model: Denoiser, x: torch.Tensor, sigma: float, extra_args: dict[str, Any]
) -> torch.Tensor:
    return model(x, x.new_full((x.shape[0],), sigma), **extra_args)


def _report(
    callback: StepCallback | None, i: int, x: torch.Tensor, sigma: float, denoised: torch.Tensor
) -> None:
    if callback is not None:
        callback({"i": i, "x": x, "sigma": sigma, "denoised": denoised})


def _default_noise(x: torch.Tensor) -> NoiseSampler:
    # Unseeded: callers that want reproducible runs pass a seeded noise sampler (see noise.py).
    return lambda sigma, sigma_next: torch.randn_like(x)


def _levels(sigmas: torch.Tensor) -> list[float]:
    # One host copy up front, so the step arithmetic below never waits on the device.
    return [float(s) for s in sigmas.detach().to("cpu", torch.float64)]


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
    for i, (sigma, sigma_next) in enumerate(pairwise(_levels(sigmas))):
        denoised = _denoise(model, x, sigma, extra_args)
        _report(callback, i, x, sigma, denoised)
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
    noise = noise_sampler or _default_noise(x)
    for i, (sigma, sigma_next) in enumerate(pairwise(_levels(sigmas))):
        denoised = _denoise(model, x, sigma, extra_args)
        _report(callback, i, x, sigma, denoised)
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
    for i, (sigma, sigma_next) in enumerate(pairwise(_levels(sigmas))):
        denoised = _denoise(model, x, sigma, extra_args)
        _report(callback, i, x, sigma, denoised)
        d = to_d(x, sigma, denoised)
        dt = sigma_next - sigma
        if sigma_next == 0:
            # Euler method for the last step: the derivative at sigma = 0 is undefined
            x = x + d * dt
            continue
        # Heun's method: average the slopes at both ends
        x_next = x + d * dt
        d_next = to_d(x_next, sigma_next, _denoise(model, x_next, sigma_next, extra_args))
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
    for i, (sigma, sigma_next) in enumerate(pairwise(_levels(sigmas))):
        denoised = _denoise(model, x, sigma, extra_args)
        _report(callback, i, x, sigma, denoised)
        d = to_d(x, sigma, denoised)
        if sigma_next == 0:
            # Euler method for the last step
            x = x + d * (sigma_next - sigma)
            continue
        # Midpoint method, with the midpoint taken in log sigma
        sigma_mid = math.sqrt(sigma * sigma_next)
        x_mid = x + d * (sigma_mid - sigma)
        d_mid = to_d(x_mid, sigma_mid, _denoise(model, x_mid, sigma_mid, extra_args))
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
    levels = _levels(sigmas)
    history: list[torch.Tensor] = []  # newest last
    for i, sigma in enumerate(levels[:-1]):
        denoised = _denoise(model, x, sigma, extra_args)
        _report(callback, i, x, sigma, denoised)
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
    levels = _levels(sigmas)
    old_denoised: torch.Tensor | None = None
    for i, (sigma, sigma_next) in enumerate(pairwise(levels)):
        denoised = _denoise(model, x, sigma, extra_args)
        _report(callback, i, x, sigma, denoised)
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
    levels = _levels(sigmas)
    noise = noise_sampler or _default_brownian_noise(x, levels, eta)
    old_denoised: torch.Tensor | None = None
    h_last = 0.0
    for i, (sigma, sigma_next) in enumerate(pairwise(levels)):
        denoised = _denoise(model, x, sigma, extra_args)
        _report(callback, i, x, sigma, denoised)
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
    levels = _levels(sigmas)
    noise = noise_sampler or _default_brownian_noise(x, levels, eta)
    for i, (sigma, sigma_next) in enumerate(pairwise(levels)):
        denoised = _denoise(model, x, sigma, extra_args)
        _report(callback, i, x, sigma, denoised)
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
        denoised_mid = _denoise(model, x_mid, sigma_mid, extra_args)
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
    for i, (sigma, sigma_next) in enumerate(pairwise(_levels(sigmas))):
        denoised = _denoise(model, x, sigma, extra_args)
        _report(callback, i, x, sigma, denoised)
        # x_next = x0 + sigma_next * eps, with eps = (x - x0) / sigma
        eps = (x - denoised) / sigma
        x = denoised + eps * sigma_next
    return x


def _unipc_coefficients(
    h: float, ratios: Sequence[float], variant: str
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """phi_1 term, B(h), and the predictor and corrector weights of UniPC for one step.

    `ratios` are r_k = (lambda_{s_k} - lambda_s) / h for the older points. The weights solve
    R rho = b with R_kj = r_j^k and b_k = k! phi_{k+1}(h) / B(h) (Zhao et al., 2023, eq. 8).
    """
    hh = -h  # data prediction integrates over -h
    h_phi_1 = math.expm1(hh)  # h * phi_1(h) = e^{-h} - 1
    if variant == "bh1":
        b_h = hh
    elif variant == "bh2":
        b_h = math.expm1(hh)
    else:
        raise ValueError(f"UniPC variant must be 'bh1' or 'bh2', got {variant!r}")
    order = len(ratios) + 1
    nodes = np.array([*ratios, 1.0])
    matrix = np.stack([nodes**k for k in range(order)])
    rhs = []
    h_phi_k = h_phi_1 / hh - 1  # hh * phi_2(hh); the loop steps on to phi_3, phi_4, ...
    factorial = 1
    for k in range(1, order + 1):
        rhs.append(h_phi_k * factorial / b_h)
        factorial *= k + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    b = np.array(rhs)
    # Orders 2 (predictor) and 1 (corrector) use the paper's simplified weight of 1/2.
    if order == 1:
        predictor, corrector = np.zeros(0), np.array([0.5])
    elif order == 2:
        predictor, corrector = np.array([0.5]), np.linalg.solve(matrix, b)
    else:
        predictor = np.linalg.solve(matrix[:-1, :-1], b[:-1])
        corrector = np.linalg.solve(matrix, b)
    return h_phi_1, b_h, predictor, corrector


def sample_uni_pc(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: StepCallback | None = None,
    noise_sampler: NoiseSampler | None = None,
    order: int = 3,
    variant: str = "bh1",
) -> torch.Tensor:
    """UniPC, the unified predictor-corrector multistep solver of Zhao et al. (2023), data prediction.

    Multistep UniP-p with UniC, B(h) = h ("bh1", ComfyUI's `uni_pc`) or e^h - 1 ("bh2"), warming up
    from order 1 and lowering the order for the final steps; no corrector after the last step.
    The corrector reuses the model call made at the predicted point, so it costs no extra calls.
    Unlike ComfyUI, which stops at sigma = 0.001, the last step lands exactly on sigma = 0.
    """
    extra_args = extra_args or {}
    levels = _levels(sigmas)
    steps = len(levels) - 1
    order = max(1, min(order, steps - 1))
    past_lambdas: list[float] = []  # newest last
    past_denoised: list[torch.Tensor] = []
    x_before: torch.Tensor | None = None  # the sample the last prediction started from
    last_step: tuple[float, float, int] | None = None  # (h, lambda of its start, its order)
    for i, (sigma, sigma_next) in enumerate(pairwise(levels)):
        denoised = _denoise(model, x, sigma, extra_args)
        _report(callback, i, x, sigma, denoised)
        if last_step is not None and x_before is not None:
            # Corrector (UniC): redo the last step using the model output at its end
            h, lam_start, step_order = last_step
            ratios = [(lam - lam_start) / h for lam in reversed(past_lambdas[-step_order:-1])]
            h_phi_1, b_h, _, rho_c = _unipc_coefficients(h, ratios, variant)
            base = past_denoised[-1]
            first_order = (sigma / levels[i - 1]) * x_before - h_phi_1 * base
            differences = [
                (old - base) / ratio
                for old, ratio in zip(reversed(past_denoised[-step_order:-1]), ratios, strict=True)
            ]
            correction = sum(
                (w * d for w, d in zip(rho_c[:-1], differences, strict=True)),
                start=rho_c[-1] * (denoised - base),
            )
            x = first_order - b_h * correction
        past_lambdas = [*past_lambdas, -math.log(sigma)][-order:]
        past_denoised = [*past_denoised, denoised][-order:]
        if sigma_next == 0:
            # First order into sigma = 0 is the data prediction itself
            x = denoised
            break
        # Predictor (UniP): lower order while warming up and for the last steps
        step_order = min(order, i + 1, steps - i)
        h = math.log(sigma) - math.log(sigma_next)
        lam = -math.log(sigma)
        ratios = [(old - lam) / h for old in reversed(past_lambdas[-step_order:-1])]
        h_phi_1, b_h, rho_p, _ = _unipc_coefficients(h, ratios, variant)
        differences = [
            (old - denoised) / ratio
            for old, ratio in zip(reversed(past_denoised[-step_order:-1]), ratios, strict=True)
        ]
        x_before = x
        x = (sigma_next / sigma) * x - h_phi_1 * denoised
        if differences:
            x = x - b_h * sum((w * d for w, d in zip(rho_p, differences, strict=True)), start=0 * x)
        last_step = (h, lam, step_order)
    return x


def sample_uni_pc_bh2(
    model: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: StepCallback | None = None,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """UniPC (Zhao et al., 2023) with B(h) = e^h - 1, ComfyUI's `uni_pc_bh2`."""
    return sample_uni_pc(model, x, sigmas, extra_args=extra_args, callback=callback, variant="bh2")


def _default_brownian_noise(x: torch.Tensor, levels: Sequence[float], eta: float) -> NoiseSampler:
    # Unseeded, like `_default_noise`; with eta = 0 nothing is drawn, so no tree is built.
    if not eta:
        return lambda sigma, sigma_next: torch.zeros_like(x)
    positive = [s for s in levels if s > 0]
    seed = int(torch.randint(0, 2**63 - 1, ()))
    return brownian_noise_sampler(seed, x, min(positive), max(positive))


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
