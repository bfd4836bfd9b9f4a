"""Seeded noise: ComfyUI-compatible initial noise, CPU-drawn ancestral noise, Brownian increments."""

from __future__ import annotations

import math

import pytest
import torch

from nodes.sd.noise import ancestral_noise_sampler, brownian_noise_sampler, initial_noise


def test_initial_noise_reproduces_comfyui_seed_zero() -> None:
    noise = initial_noise(0, (1, 4, 64, 64))
    assert noise.dtype == torch.float32 and noise.device.type == "cpu"
    expected = torch.tensor([-1.12584, -1.15236, -0.250579, -0.433879, 0.84871])
    torch.testing.assert_close(noise.flatten()[:5], expected, rtol=0, atol=1e-5)
    assert noise.sum().item() == pytest.approx(-124.1127, abs=1e-3)


def test_initial_noise_is_one_draw_for_the_whole_batch() -> None:
    batch = initial_noise(7, (3, 4, 8, 8))
    assert torch.equal(batch[0], initial_noise(7, (1, 4, 8, 8))[0])
    assert not torch.equal(batch[1], initial_noise(8, (1, 4, 8, 8))[0])
    assert torch.equal(batch, initial_noise(7, (3, 4, 8, 8)))


def test_initial_noise_accepts_the_full_comfyui_seed_range_and_a_device() -> None:
    top = initial_noise(2**64 - 1, (1, 4, 2, 2), device="cpu")
    assert top.shape == (1, 4, 2, 2) and torch.isfinite(top).all()
    assert not torch.equal(top, initial_noise(0, (1, 4, 2, 2)))


def test_ancestral_noise_is_seeded_fresh_per_call_and_follows_the_target() -> None:
    like = torch.zeros(2, 4, 16, 16, dtype=torch.float64)
    first, again = ancestral_noise_sampler(3, like), ancestral_noise_sampler(3, like)
    a, b = first(10.0, 5.0), first(5.0, 1.0)
    assert a.dtype == torch.float64 and a.shape == like.shape
    assert not torch.equal(a, b)
    assert torch.equal(a, again(10.0, 5.0)) and torch.equal(b, again(5.0, 1.0))
    assert not torch.equal(a, ancestral_noise_sampler(4, like)(10.0, 5.0))
    # Drawn in float32 on the CPU whatever the target, so every device sees the same values.
    reference = torch.randn(like.shape, generator=torch.Generator("cpu").manual_seed(3))
    assert torch.equal(a, reference.double())


def test_ancestral_noise_is_standard_normal() -> None:
    noise = ancestral_noise_sampler(11, torch.zeros(1, 4, 64, 64))(1.0, 0.5)
    assert abs(noise.mean().item()) < 0.03
    assert noise.std().item() == pytest.approx(1.0, abs=0.03)


def _tree(seed: int) -> object:
    return brownian_noise_sampler(seed, torch.zeros(1, 4, 32, 32), 0.0292, 14.6146)


def test_brownian_noise_is_seeded_and_independent_of_query_order() -> None:
    ordered = _tree(5)
    a, b = ordered(14.6146, 3.0), ordered(3.0, 0.5)
    reordered = _tree(5)
    assert torch.equal(reordered(3.0, 0.5), b)
    assert torch.equal(reordered(14.6146, 3.0), a)
    assert not torch.equal(_tree(6)(3.0, 0.5), b)


def test_brownian_increments_are_unit_variance_and_add_up() -> None:
    noise = _tree(9)
    high, mid, low = 14.6146, 2.0, 0.0292
    whole, upper, lower = noise(high, low), noise(high, mid), noise(mid, low)
    for unit in (whole, upper, lower):
        assert unit.std().item() == pytest.approx(1.0, abs=0.05)
    # W(low) - W(high) = (W(mid) - W(high)) + (W(low) - W(mid)), before normalising each.
    summed = upper * math.sqrt(high - mid) + lower * math.sqrt(mid - low)
    torch.testing.assert_close(whole * math.sqrt(high - low), summed, rtol=0, atol=1e-4)
    # Increments over disjoint intervals are independent.
    assert abs(torch.corrcoef(torch.stack([upper.flatten(), lower.flatten()]))[0, 1]) < 0.06


def test_brownian_noise_tolerates_the_exact_schedule_ends() -> None:
    sigmas = torch.tensor([14.614641189575195, 1.0, 0.029167158])
    noise = brownian_noise_sampler(1, torch.zeros(1, 4, 8, 8), float(sigmas[-1]), float(sigmas[0]))
    for sigma, sigma_next in zip(sigmas.tolist(), sigmas[1:].tolist(), strict=False):
        assert torch.isfinite(noise(sigma, sigma_next)).all()
