"""Seeded noise for sampling, drawn on the CPU so that a seed gives the same result on every device.

The initial noise follows ComfyUI's recipe (one CPU `torch.randn` for the whole batch), so seeds
carry over. Per-step noise comes from a noise sampler, `noise(sigma, sigma_next) -> Tensor`,
returning standard normal noise shaped like the latent for the step from sigma to sigma_next.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

NoiseSampler = Callable[[float, float], torch.Tensor]

_TREE_TOLERANCE = 1e-6


def _generator(seed: int) -> torch.Generator:
    # ComfyUI's seeds span 0 .. 2**64 - 1, which is exactly what manual_seed accepts.
    return torch.Generator("cpu").manual_seed(seed)


def initial_noise(
    seed: int, shape: Sequence[int], *, device: torch.device | str | None = None
) -> torch.Tensor:
    """Standard normal noise for a whole batch: one float32 CPU draw from a fresh seeded generator.

    Because the batch is one draw, image i of a batch equals what ComfyUI gives for batch index i.
    """
    noise = torch.randn(tuple(shape), generator=_generator(seed), dtype=torch.float32)
    return noise if device is None else noise.to(device)


def ancestral_noise_sampler(seed: int, like: torch.Tensor) -> NoiseSampler:
    """Fresh standard normal noise at every call, from a seeded CPU generator, moved onto `like`."""
    generator = _generator(seed)

    def noise(sigma: float, sigma_next: float) -> torch.Tensor:
        fresh = torch.randn(like.shape, generator=generator, dtype=torch.float32)
        return fresh.to(device=like.device, dtype=like.dtype)

    return noise


def brownian_noise_sampler(
    seed: int, like: torch.Tensor, sigma_min: float, sigma_max: float
) -> NoiseSampler:
    """Normalised Brownian increments W(sigma_next) - W(sigma) from one seeded Brownian tree on CPU.

    A Brownian tree (Li et al., 2020, torchsde) returns consistent increments whatever the order
    or granularity of the queries, which is what SDE solvers with sub-steps need.
    """
    import torchsde

    start, end = float(sigma_min), float(sigma_max)
    tree = torchsde.BrownianInterval(
        t0=start,
        t1=end,
        size=tuple(like.shape),
        dtype=torch.float32,
        device="cpu",
        entropy=seed,
        tol=_TREE_TOLERANCE,
        halfway_tree=True,
    )
    # The tree rounds its times to its tolerance; queries must stay within the rounded ends.
    digits = round(-math.log10(_TREE_TOLERANCE))
    start, end = round(start, digits), round(end, digits)

    def noise(sigma: float, sigma_next: float) -> torch.Tensor:
        low, high = sorted((float(sigma), float(sigma_next)))
        low, high = max(low, start), min(high, end)
        increment: torch.Tensor = tree(low, high)
        sign = 1.0 if sigma_next > sigma else -1.0
        # Divide by the std of the increment so the caller gets unit-variance noise.
        scale: float = sign / max(high - low, 1e-12) ** 0.5
        unit = increment * scale
        return unit.to(device=like.device, dtype=like.dtype)

    return noise


def comfy_brownian_noise_sampler(
    seed: int, like: torch.Tensor, sigma_min: torch.Tensor, sigma_max: torch.Tensor
) -> NoiseSampler:
    """ComfyUI's CPU Brownian tree noise for SDE samplers: torchsde's BrownianTree seeded with `seed`.

    It spans the schedule's smallest positive and largest sigma (float32, as ComfyUI keeps them),
    and each increment W(sigma_next) - W(sigma) is divided by sqrt(|sigma_next - sigma|).
    """
    import warnings

    import torchsde

    start, end = sorted((sigma_min.detach().cpu().float(), sigma_max.detach().cpu().float()))
    tree = torchsde.BrownianTree(
        start, torch.zeros(like.shape, dtype=torch.float32), end, entropy=seed
    )

    def noise(sigma: float, sigma_next: float) -> torch.Tensor:
        t0 = torch.as_tensor(sigma, dtype=torch.float32)
        t1 = torch.as_tensor(sigma_next, dtype=torch.float32)
        low, high = (t0, t1) if t0 <= t1 else (t1, t0)
        sign = 1.0 if t1 >= t0 else -1.0
        with warnings.catch_warnings():
            # Queries past the ends are clamped by the tree, which also warns; ComfyUI's are too.
            warnings.simplefilter("ignore")
            increment: torch.Tensor = tree(low, high) * sign
        unit = increment / (t1 - t0).abs().sqrt()
        return unit.to(device=like.device, dtype=like.dtype)

    return noise
