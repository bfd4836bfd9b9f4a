"""The samplers, driven by analytic denoisers so that every check runs in milliseconds.

For Gaussian data x0 ~ N(MU, S^2) the ideal denoiser is D(x, sigma) = MU + S^2 / (S^2 + sigma^2)
(x - MU), and the probability-flow ODE has the closed form
x(sigma) = MU + (x(sigma_T) - MU) sqrt(S^2 + sigma^2) / sqrt(S^2 + sigma_T^2),
which gives an exact answer to measure each solver's error and order against.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    DPMSolverSDEScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    KDPM2DiscreteScheduler,
    LMSDiscreteScheduler,
    UniPCMultistepScheduler,
)

from nodes.sd.noise import ancestral_noise_sampler, brownian_noise_sampler
from nodes.sd.sampler_steps import get_ancestral_step, to_d
from nodes.sd.samplers import (
    ANCESTRAL_SAMPLERS,
    SAMPLERS,
    SDE_SAMPLERS,
    sample_ddim,
    sample_dpmpp_2m,
    sample_dpmpp_2m_sde,
    sample_euler,
    sample_euler_ancestral,
)
from nodes.sd.schedules import SCHEDULERS, sampling_sigmas
from nodes.sd.unipc import sample_uni_pc
from nodes.sd.values import NoiseSchedule

MU, S = 0.3, 0.5
SD = NoiseSchedule()
DIFFUSERS_SD = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}


def gaussian_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The exact x0 estimate E[x0 | x] for x0 ~ N(MU, S^2) per element."""
    s = sigma.view(-1, 1, 1, 1)
    return MU + S**2 / (S**2 + s**2) * (x - MU)


def wobbly_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """A smooth non-linear denoiser, so that reference comparisons exercise more than linear maps."""
    s = sigma.view(-1, 1, 1, 1)
    return gaussian_denoiser(x, sigma) + 0.2 * torch.sin(x) / (1 + s)


def exact_ode(x_start: torch.Tensor, sigma_start: float, sigma_end: float) -> torch.Tensor:
    return MU + (x_start - MU) * math.sqrt(S**2 + sigma_end**2) / math.sqrt(S**2 + sigma_start**2)


def start_latent(
    sigma_start: float, seed: int = 0, shape: tuple[int, ...] = (2, 4, 8, 8)
) -> torch.Tensor:
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return MU + noise * math.sqrt(S**2 + sigma_start**2)


def noise_for(name: str, seed: int, x: torch.Tensor, sigmas: torch.Tensor) -> Any:
    if name in ANCESTRAL_SAMPLERS:
        return ancestral_noise_sampler(seed, x)
    if name in SDE_SAMPLERS:
        positive = sigmas[sigmas > 0]
        return brownian_noise_sampler(seed, x, float(positive.min()), float(positive.max()))
    return None


def run(
    name: str, sigmas: torch.Tensor, x: torch.Tensor, seed: int = 0, **kwargs: Any
) -> torch.Tensor:
    sampler = SAMPLERS[name]
    return sampler(
        gaussian_denoiser, x, sigmas, noise_sampler=noise_for(name, seed, x, sigmas), **kwargs
    )


def test_helpers() -> None:
    x, denoised = torch.full((1, 1, 1, 1), 3.0), torch.full((1, 1, 1, 1), 1.0)
    assert to_d(x, 2.0, denoised).item() == 1.0
    down, up = get_ancestral_step(10.0, 6.0)
    assert down**2 + up**2 == pytest.approx(36.0)
    assert up == pytest.approx(6.0 * math.sqrt(1 - 0.36))
    assert get_ancestral_step(10.0, 6.0, eta=0.0) == (6.0, 0.0)
    assert get_ancestral_step(10.0, 0.0) == (0.0, 0.0)


def test_the_registry_holds_every_sampler_the_node_offers() -> None:
    from nodes.sampling import SAMPLER_NAMES

    assert set(SAMPLER_NAMES) <= set(SAMPLERS)
    assert ANCESTRAL_SAMPLERS | SDE_SAMPLERS <= set(SAMPLERS)
    # Equal, and in the same order: a sampler added on one side only is either unreachable from
    # graphs or offered without an implementation.
    assert list(SAMPLER_NAMES) == list(SAMPLERS)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_and_scheduler_pair_is_deterministic_and_lands_on_the_data(
    name: str, scheduler: str
) -> None:
    sigmas = sampling_sigmas(SD, steps=10, denoise=1.0, scheduler=scheduler, sampler=name)
    x = start_latent(float(sigmas[0]), shape=(1, 4, 32, 32))
    out = run(name, sigmas, x, seed=1)
    assert out.shape == x.shape and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert torch.equal(out, run(name, sigmas, x.clone(), seed=1))
    if name in ANCESTRAL_SAMPLERS | SDE_SAMPLERS:
        assert not torch.allclose(out, run(name, sigmas, x, seed=2))
    # Ten steps from pure noise end near the data distribution N(MU, S^2). Only roughly: with
    # so few steps the spread is off by up to half for some pairs (measured 0.34 to 0.77 for 0.5).
    assert out.mean().item() == pytest.approx(MU, abs=0.05)
    assert 0.6 * S < out.std().item() < 1.6 * S


def test_the_callback_sees_every_step_and_can_stop_sampling() -> None:
    sigmas = sampling_sigmas(SD, steps=6, denoise=1.0, scheduler="karras", sampler="heun")
    seen: list[dict[str, Any]] = []
    sample_euler(gaussian_denoiser, start_latent(float(sigmas[0])), sigmas, callback=seen.append)
    assert [info["i"] for info in seen] == list(range(6))
    assert [info["sigma"] for info in seen] == pytest.approx(sigmas[:-1].tolist())
    assert all(info["denoised"].shape == (2, 4, 8, 8) for info in seen)

    class Stop(Exception):
        pass

    calls = 0

    def counting(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        return gaussian_denoiser(x, sigma)

    def stop_at_two(info: dict[str, Any]) -> None:
        if info["i"] == 2:
            raise Stop

    for name, sampler in SAMPLERS.items():
        calls = 0
        x = start_latent(float(sigmas[0]))
        with pytest.raises(Stop):
            sampler(
                counting,
                x,
                sigmas,
                callback=stop_at_two,
                noise_sampler=noise_for(name, 0, x, sigmas),
            )
        assert calls <= 5, name  # at most two model calls per step before the third


def _drive(
    scheduler: Any,
    sigmas: torch.Tensor,
    x: torch.Tensor,
    denoiser: Callable[..., torch.Tensor],
    *,
    variance_preserving: bool = False,
    step_kwargs: Callable[[int], dict[str, Any]] | None = None,
) -> torch.Tensor:
    """Run a diffusers scheduler on our sigmas, one model call per `step`, with `denoiser` as model.

    The DPM-Solver and UniPC schedulers work on x / sqrt(1 + sigma^2); the k-diffusion ones on x.
    The model output is x0 ("sample" prediction) or, where that is not supported, eps.
    """
    scheduler.set_begin_index(0)
    sample = x / math.sqrt(1 + float(sigmas[0]) ** 2) if variance_preserving else x
    for call, t in enumerate(scheduler.timesteps):
        sigma = float(scheduler.sigmas[call])
        x_ve = sample * math.sqrt(1 + sigma**2) if variance_preserving else sample
        prediction = denoiser(x_ve, torch.full((x.shape[0],), sigma))
        if scheduler.config.prediction_type == "epsilon":
            prediction = (x_ve - prediction) / sigma
        extra = step_kwargs(call) if step_kwargs else {}
        sample = scheduler.step(prediction, t, sample, **extra).prev_sample
    if variance_preserving:
        return sample * math.sqrt(1 + float(sigmas[-1]) ** 2)
    return sample


def _with_sigmas(scheduler: Any, sigmas: torch.Tensor, calls: int) -> Any:
    scheduler.set_timesteps(calls)
    scheduler.sigmas = sigmas.clone()
    scheduler.timesteps = torch.arange(calls, 0, -1, dtype=torch.float32)
    return scheduler


@pytest.mark.parametrize("scheduler", ["normal", "karras"])
def test_euler_matches_diffusers(scheduler: str) -> None:
    sigmas = sampling_sigmas(SD, steps=12, denoise=1.0, scheduler=scheduler, sampler="euler")
    x = start_latent(float(sigmas[0]))
    reference = _with_sigmas(
        EulerDiscreteScheduler(**DIFFUSERS_SD, prediction_type="sample"), sigmas, 12
    )
    expected = _drive(reference, sigmas, x, wobbly_denoiser)
    torch.testing.assert_close(
        sample_euler(wobbly_denoiser, x, sigmas), expected, rtol=0, atol=1e-5
    )


def test_heun_matches_diffusers() -> None:
    sigmas = sampling_sigmas(SD, steps=10, denoise=1.0, scheduler="karras", sampler="heun")
    x = start_latent(float(sigmas[0]))
    # diffusers' Heun walks each inner sigma twice (predictor, then corrector).
    doubled = torch.cat([sigmas[:1], sigmas[1:-1].repeat_interleave(2), sigmas[-1:]])
    reference = HeunDiscreteScheduler(**DIFFUSERS_SD, prediction_type="sample")
    reference.set_timesteps(10)
    reference.sigmas = doubled
    expected = _drive(reference, sigmas, x, wobbly_denoiser)
    ours = SAMPLERS["heun"](wobbly_denoiser, x, sigmas)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


def test_dpmpp_2m_matches_diffusers_dpm_solver_multistep() -> None:
    sigmas = sampling_sigmas(SD, steps=10, denoise=1.0, scheduler="karras", sampler="dpmpp_2m")
    x = start_latent(float(sigmas[0]))
    reference = _with_sigmas(
        DPMSolverMultistepScheduler(
            **DIFFUSERS_SD, prediction_type="sample", algorithm_type="dpmsolver++", solver_order=2
        ),
        sigmas,
        10,
    )
    expected = _drive(reference, sigmas, x, wobbly_denoiser, variance_preserving=True)
    ours = sample_dpmpp_2m(wobbly_denoiser, x, sigmas)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


def test_dpmpp_2m_sde_matches_diffusers_given_the_same_noise() -> None:
    sigmas = sampling_sigmas(SD, steps=10, denoise=1.0, scheduler="karras", sampler="dpmpp_2m_sde")
    x = start_latent(float(sigmas[0]))
    draws = torch.randn((10, *x.shape), generator=torch.Generator().manual_seed(4))
    served = iter(draws)
    reference = _with_sigmas(
        DPMSolverMultistepScheduler(
            **DIFFUSERS_SD, prediction_type="sample", algorithm_type="sde-dpmsolver++"
        ),
        sigmas,
        10,
    )
    expected = _drive(
        reference,
        sigmas,
        x,
        wobbly_denoiser,
        variance_preserving=True,
        step_kwargs=lambda i: {"variance_noise": draws[i]},
    )
    ours = sample_dpmpp_2m_sde(wobbly_denoiser, x, sigmas, noise_sampler=lambda s, t: next(served))
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


def test_euler_ancestral_matches_diffusers_with_the_same_cpu_generator() -> None:
    sigmas = sampling_sigmas(
        SD, steps=10, denoise=1.0, scheduler="normal", sampler="euler_ancestral"
    )
    x = start_latent(float(sigmas[0]))
    reference = _with_sigmas(
        EulerAncestralDiscreteScheduler(**DIFFUSERS_SD, prediction_type="epsilon"), sigmas, 10
    )
    generator = torch.Generator().manual_seed(21)
    expected = _drive(
        reference, sigmas, x, wobbly_denoiser, step_kwargs=lambda i: {"generator": generator}
    )
    ours = sample_euler_ancestral(
        wobbly_denoiser, x, sigmas, noise_sampler=ancestral_noise_sampler(21, x)
    )
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


def test_lms_matches_diffusers() -> None:
    sigmas = sampling_sigmas(SD, steps=10, denoise=1.0, scheduler="karras", sampler="lms")
    x = start_latent(float(sigmas[0]))
    reference = _with_sigmas(
        LMSDiscreteScheduler(**DIFFUSERS_SD, prediction_type="sample"), sigmas, 10
    )
    expected = _drive(reference, sigmas, x, wobbly_denoiser)
    ours = SAMPLERS["lms"](wobbly_denoiser, x, sigmas)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


# diffusers' bh1 turns the last step into 0 * inf = NaN when it ends at sigma = 0, so bh1 is
# compared on a schedule that stops at sigma_min.
@pytest.mark.parametrize(("variant", "to_zero"), [("bh1", False), ("bh2", False), ("bh2", True)])
@pytest.mark.parametrize("order", [2, 3])
def test_uni_pc_matches_diffusers_unipc_multistep(variant: str, to_zero: bool, order: int) -> None:
    # Fewer than 15 steps, so diffusers also lowers the order for the final steps.
    sigmas = sampling_sigmas(SD, steps=10, denoise=1.0, scheduler="karras", sampler="uni_pc")
    sigmas = sigmas if to_zero else sigmas[:-1]
    x = start_latent(float(sigmas[0]))
    reference = _with_sigmas(
        UniPCMultistepScheduler(
            **DIFFUSERS_SD, prediction_type="sample", solver_type=variant, solver_order=order
        ),
        sigmas,
        len(sigmas) - 1,
    )
    expected = _drive(reference, sigmas, x, wobbly_denoiser, variance_preserving=True)
    ours = sample_uni_pc(wobbly_denoiser, x, sigmas, order=order, variant=variant)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


def test_uni_pc_names_pick_the_variants() -> None:
    sigmas = sampling_sigmas(SD, steps=8, denoise=1.0, scheduler="karras", sampler="uni_pc")
    x = start_latent(float(sigmas[0]))
    bh1 = sample_uni_pc(wobbly_denoiser, x, sigmas, variant="bh1")
    bh2 = sample_uni_pc(wobbly_denoiser, x, sigmas, variant="bh2")
    assert torch.equal(SAMPLERS["uni_pc"](wobbly_denoiser, x, sigmas), bh1)
    assert torch.equal(SAMPLERS["uni_pc_bh2"](wobbly_denoiser, x, sigmas), bh2)
    assert not torch.allclose(bh1, bh2)
    with pytest.raises(ValueError, match="bh1"):
        sample_uni_pc(wobbly_denoiser, x, sigmas, variant="bh3")


def test_ddim_is_euler_in_sigma_space() -> None:
    sigmas = sampling_sigmas(SD, steps=9, denoise=1.0, scheduler="ddim_uniform", sampler="ddim")
    x = start_latent(float(sigmas[0]))
    torch.testing.assert_close(
        sample_ddim(wobbly_denoiser, x, sigmas),
        sample_euler(wobbly_denoiser, x, sigmas),
        rtol=0,
        atol=1e-5,
    )


def test_stochastic_samplers_without_noise_reduce_to_their_ode_solvers() -> None:
    sigmas = sampling_sigmas(SD, steps=9, denoise=1.0, scheduler="karras", sampler="euler")
    x = start_latent(float(sigmas[0]))
    torch.testing.assert_close(
        sample_euler_ancestral(wobbly_denoiser, x, sigmas, eta=0.0),
        sample_euler(wobbly_denoiser, x, sigmas),
    )
    torch.testing.assert_close(
        sample_dpmpp_2m_sde(wobbly_denoiser, x, sigmas, eta=0.0),
        sample_dpmpp_2m(wobbly_denoiser, x, sigmas),
        rtol=0,
        atol=1e-5,
    )


# Error ratio between 16 and 64 steps: about 4 for a first-order method, 16 for second order.
ORDER_RATIOS = {
    "euler": 3.0,
    "ddim": 3.0,
    "heun": 10.0,
    "dpm_2": 10.0,
    "lms": 10.0,
    "dpmpp_2m": 10.0,
    "dpmpp_sde": 10.0,
    "uni_pc": 10.0,
    "uni_pc_bh2": 10.0,
    "euler_ancestral": 3.0,
    "dpmpp_2m_sde": 10.0,
}


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_deterministic_solvers_converge_to_the_exact_ode_solution_at_their_order(name: str) -> None:
    # Stop at sigma_min: the final jump to 0 is first order for most solvers and would hide the
    # order of the rest. Noise is switched off (eta = 0) for the stochastic ones.
    kwargs = {"eta": 0.0} if name in ANCESTRAL_SAMPLERS | SDE_SAMPLERS else {}
    errors = []
    for steps in (16, 64):
        sigmas = sampling_sigmas(SD, steps=steps, denoise=1.0, scheduler="karras", sampler="euler")
        sigmas = sigmas[:-1]
        x = start_latent(float(sigmas[0]))
        out = SAMPLERS[name](gaussian_denoiser, x, sigmas, **kwargs)
        errors.append((out - exact_ode(x, float(sigmas[0]), float(sigmas[-1]))).abs().max().item())
    assert errors[0] / errors[1] > ORDER_RATIOS[name], errors


def _ancestral_std(sigmas: list[float]) -> float:
    """The std that Euler-ancestral steps with the exact denoiser give, by a variance recursion."""
    variance = 1 + sigmas[0] ** 2  # var(x - MU) at the start
    for sigma, sigma_next in pairwise(sigmas):
        keep = S**2 / (S**2 + sigma**2)
        down, up = get_ancestral_step(sigma, sigma_next)
        gain = keep + (down / sigma) * (1 - keep)
        variance = gain**2 * variance + up**2
    return math.sqrt(variance)


def test_ancestral_noise_has_the_right_scale() -> None:
    sigmas = sampling_sigmas(SD, steps=30, denoise=1.0, scheduler="karras", sampler="euler")
    x = MU + torch.randn((1, 4, 64, 64), generator=torch.Generator().manual_seed(0)) * math.sqrt(
        1 + float(sigmas[0]) ** 2
    )
    out = run("euler_ancestral", sigmas, x, seed=3)
    assert out.std().item() == pytest.approx(_ancestral_std(sigmas.tolist()), rel=0.02)
    assert out.mean().item() == pytest.approx(MU, abs=0.02)


@pytest.mark.parametrize("name", sorted(SDE_SAMPLERS))
def test_sde_samplers_sample_the_data_distribution(name: str) -> None:
    sigmas = sampling_sigmas(SD, steps=30, denoise=1.0, scheduler="karras", sampler=name)
    x = start_latent(float(sigmas[0]), shape=(1, 4, 64, 64))
    out = run(name, sigmas, x, seed=3)
    assert out.std().item() == pytest.approx(S, rel=0.04)
    assert out.mean().item() == pytest.approx(MU, abs=0.02)
    # The result is not the deterministic solution: fresh noise went in.
    assert (out - exact_ode(x, float(sigmas[0]), 0.0)).std().item() > 0.1


def _drive_two_stage(
    reference: Any, x: torch.Tensor, mid_sigma: Callable[[Any], float]
) -> torch.Tensor:
    """Run a diffusers two-stage (KDPM2, DPM-Solver-SDE) scheduler with `wobbly_denoiser` as eps model.

    Each step is two `step` calls, the second evaluating the model at the mid sigma
    (`mid_sigma(reference)`), except for the last step, which is one Euler call.
    """
    reference.set_begin_index(0)
    sample = x
    for t in reference.timesteps:
        index = reference.step_index or 0
        first = reference.state_in_first_order
        sigma = float(reference.sigmas[index]) if first else mid_sigma(reference)
        denoised = wobbly_denoiser(sample, torch.full((x.shape[0],), sigma))
        sample = reference.step((sample - denoised) / sigma, t, sample).prev_sample
    return sample


def test_dpm_2_matches_diffusers_kdpm2() -> None:
    sigmas = sampling_sigmas(SD, steps=10, denoise=1.0, scheduler="karras", sampler="dpm_2")
    x = start_latent(float(sigmas[0]))
    reference = KDPM2DiscreteScheduler(**DIFFUSERS_SD, prediction_type="epsilon")
    reference.set_timesteps(len(sigmas) - 1)
    # Our sigmas (ending at 0), laid out as diffusers' set_timesteps lays out its own: each inner
    # sigma twice, with the midpoints (geometric means, as in k-diffusion) beside them.
    levels = sigmas.float()
    mids = levels.log().lerp(levels.roll(1).log(), 0.5).exp()
    reference.sigmas = torch.cat([levels[:1], levels[1:].repeat_interleave(2), levels[-1:]])
    reference.sigmas_interpol = torch.cat([mids[:1], mids[1:].repeat_interleave(2), mids[-1:]])
    reference.timesteps = torch.arange(2 * len(levels) - 3, 0, -1, dtype=torch.float32)
    expected = _drive_two_stage(reference, x, lambda r: float(r.sigmas_interpol[r.step_index]))
    ours = SAMPLERS["dpm_2"](wobbly_denoiser, x, sigmas)
    assert len(reference.timesteps) == 2 * (len(sigmas) - 1) - 1  # the last step is Euler
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


def test_dpmpp_sde_matches_diffusers_dpm_solver_sde_given_the_same_brownian_tree() -> None:
    sigmas = sampling_sigmas(SD, steps=8, denoise=1.0, scheduler="karras", sampler="dpmpp_sde")
    x = start_latent(float(sigmas[0]))
    positive = sigmas[sigmas > 0]
    low, high = float(positive.min()), float(positive.max())
    reference = DPMSolverSDEScheduler(**DIFFUSERS_SD, prediction_type="epsilon")
    reference.set_timesteps(len(sigmas) - 1)
    levels = sigmas.float()
    reference.sigmas = torch.cat([levels[:1], levels[1:-1].repeat_interleave(2), levels[-1:]])
    reference.timesteps = torch.arange(2 * len(levels) - 3, 0, -1, dtype=torch.float32)
    # diffusers asks for the noise at float32 sigmas; snapped to the float64 levels and midpoints
    # that our sampler asks for, both draw the same Brownian increments (the rest agrees to 1e-7).
    exact = [float(s) for s in sigmas] + [math.sqrt(a * b) for a, b in pairwise(map(float, sigmas))]

    def snap(sigma: torch.Tensor) -> float:
        return min(exact, key=lambda level: abs(level - float(sigma)))

    tree = brownian_noise_sampler(9, x, low, high)  # set_timesteps resets it, so it goes after
    reference.noise_sampler = lambda sigma, sigma_next: tree(snap(sigma), snap(sigma_next))
    expected = _drive_two_stage(reference, x, lambda r: float(r.mid_point_sigma))
    ours = SAMPLERS["dpmpp_sde"](
        wobbly_denoiser, x, sigmas, noise_sampler=brownian_noise_sampler(9, x, low, high)
    )
    assert not torch.allclose(ours, SAMPLERS["dpmpp_sde"](wobbly_denoiser, x, sigmas))  # noisy
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("steps", [10, 7])
def test_ddim_matches_diffusers_ddim_on_its_own_timesteps(steps: int) -> None:
    """Deterministic DDIM (eta 0) in diffusers' variance-preserving form, on its timesteps."""
    reference = DDIMScheduler(
        **DIFFUSERS_SD,
        prediction_type="sample",
        clip_sample=False,
        set_alpha_to_one=True,  # the last step lands on sigma 0, where our schedules end
        steps_offset=1,
        timestep_spacing="leading",
    )
    reference.set_timesteps(steps)
    abar = reference.alphas_cumprod.double()
    level = ((1 - abar) / abar).sqrt()
    sigmas = torch.cat([level[reference.timesteps], torch.zeros(1, dtype=torch.float64)]).float()
    x = start_latent(float(sigmas[0]))
    sample = x / math.sqrt(1 + float(sigmas[0]) ** 2)  # VP form: x / sqrt(1 + sigma^2)
    for t, sigma in zip(reference.timesteps, sigmas, strict=False):
        x_ve = sample * math.sqrt(1 + float(sigma) ** 2)
        x0 = wobbly_denoiser(x_ve, torch.full((x.shape[0],), float(sigma)))
        sample = reference.step(x0, t, sample, eta=0.0).prev_sample
    ours = sample_ddim(wobbly_denoiser, x, sigmas)
    torch.testing.assert_close(ours, sample, rtol=0, atol=1e-5)
