"""What a sampler is given and returns, and the step pieces every sampler shares.

A `Denoiser` predicts x0 from a noisy x at noise level sigma; a `Sampler` walks a list of
sigmas down to 0 with one (see samplers.py and unipc.py). `StepCallback` gets one report per step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch

from nodes.sd.noise import NoiseSampler, brownian_noise_sampler

StepCallback = Callable[[dict[str, Any]], None]


class Denoiser(Protocol):
    """A model that predicts the clean sample x0 from a noisy x at noise level sigma."""

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **extra_args: Any) -> torch.Tensor: ...


class Sampler(Protocol):
    """A solver that walks `sigmas` down from x and returns the final sample."""

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


def denoise_at(
    model: Denoiser, x: torch.Tensor, sigma: float, extra_args: dict[str, Any]
) -> torch.Tensor:
    """The model's x0 for the whole batch at one noise level."""
    return model(x, x.new_full((x.shape[0],), sigma), **extra_args)


def report_step(
    callback: StepCallback | None, i: int, x: torch.Tensor, sigma: float, denoised: torch.Tensor
) -> None:
    """Tell `callback`, if any, about step i before it is applied."""
    if callback is not None:
        callback({"i": i, "x": x, "sigma": sigma, "denoised": denoised})


def default_noise(x: torch.Tensor) -> NoiseSampler:
    """Fresh Gaussian noise shaped like x for each step."""
    # Unseeded: callers that want reproducible runs pass a seeded noise sampler (see noise.py).
    return lambda sigma, sigma_next: torch.randn_like(x)


def sigma_levels(sigmas: torch.Tensor) -> list[float]:
    """The sigmas as Python floats."""
    # One host copy up front, so a sampler's step arithmetic never waits on the device.
    return [float(s) for s in sigmas.detach().to("cpu", torch.float64)]


def default_brownian_noise(x: torch.Tensor, levels: Sequence[float], eta: float) -> NoiseSampler:
    """Brownian-tree noise over the positive sigmas in `levels`, for the SDE samplers."""
    # Unseeded, like `default_noise`; with eta = 0 nothing is drawn, so no tree is built.
    if not eta:
        return lambda sigma, sigma_next: torch.zeros_like(x)
    positive = [s for s in levels if s > 0]
    seed = int(torch.randint(0, 2**63 - 1, ()))
    return brownian_noise_sampler(seed, x, min(positive), max(positive))
