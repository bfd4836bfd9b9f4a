"""UniPC, the unified predictor-corrector multistep solver of Zhao et al. (2023), data prediction.

Same shape as the samplers in samplers.py; `uni_pc` uses B(h) = h, `uni_pc_bh2` B(h) = e^h - 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import torch

from nodes.sd.noise import NoiseSampler
from nodes.sd.sampler_steps import Denoiser, StepCallback, denoise_at, report_step, sigma_levels


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
    levels = sigma_levels(sigmas)
    steps = len(levels) - 1
    order = max(1, min(order, steps - 1))
    past_lambdas: list[float] = []  # newest last
    past_denoised: list[torch.Tensor] = []
    x_before: torch.Tensor | None = None  # the sample the last prediction started from
    last_step: tuple[float, float, int] | None = None  # (h, lambda of its start, its order)
    for i, (sigma, sigma_next) in enumerate(pairwise(levels)):
        denoised = denoise_at(model, x, sigma, extra_args)
        report_step(callback, i, x, sigma, denoised)
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
