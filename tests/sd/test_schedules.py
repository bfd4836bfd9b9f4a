"""Sigma schedules: the SD training schedule, sigma <-> timestep, and ComfyUI's six schedulers.

diffusers is the independent reference where it computes the same thing. It builds its betas in
float32, we (like ComfyUI) in float64, so its sigmas differ from ours by up to ~1.3e-5 relative.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from diffusers import DDIMScheduler, EulerDiscreteScheduler

from nodes.sd.schedules import (
    DISCARD_PENULTIMATE_SIGMA_SAMPLERS,
    SCHEDULERS,
    discrete_schedule,
    sampling_sigmas,
    scheduler_sigmas,
    training_sigmas,
)
from nodes.sd.values import NoiseSchedule

SD = NoiseSchedule()
DIFFUSERS_SD = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
}
# float32 betas in diffusers against float64 here.
RTOL = 3e-5


def _diffusers_euler_sigmas(steps: int, **config: object) -> torch.Tensor:
    scheduler = EulerDiscreteScheduler(**DIFFUSERS_SD, **config)
    scheduler.set_timesteps(steps)
    return scheduler.sigmas


def test_training_sigmas_match_sd_constants_and_diffusers() -> None:
    sigmas = training_sigmas(SD)
    assert sigmas.dtype == torch.float64 and sigmas.shape == (1000,)
    assert sigmas[0].item() == pytest.approx(0.0291672, rel=1e-5)
    assert sigmas[-1].item() == pytest.approx(14.614642, rel=1e-5)
    reference = EulerDiscreteScheduler(**DIFFUSERS_SD).sigmas[:-1].flip(0).double()
    torch.testing.assert_close(sigmas, reference, rtol=RTOL, atol=0)


def test_linear_beta_schedule_matches_diffusers() -> None:
    schedule = NoiseSchedule(beta_start=0.0001, beta_end=0.02, beta_schedule="linear")
    reference = EulerDiscreteScheduler(beta_start=0.0001, beta_end=0.02, beta_schedule="linear")
    # float32 keeps only ~4 digits of 1 - alpha_bar at t = 0, where beta is 1e-4.
    torch.testing.assert_close(
        training_sigmas(schedule), reference.sigmas[:-1].flip(0).double(), rtol=1e-4, atol=0
    )


def test_unknown_beta_schedule_is_rejected() -> None:
    with pytest.raises(ValueError, match="squaredcos"):
        training_sigmas(NoiseSchedule(beta_schedule="squaredcos_cap_v2"))


def test_timestep_and_sigma_are_inverse_and_exact_on_training_steps() -> None:
    schedule = discrete_schedule(SD)
    integers = torch.arange(1000, dtype=torch.float64)
    torch.testing.assert_close(schedule.sigma(integers), schedule.sigmas, rtol=1e-12, atol=0)
    torch.testing.assert_close(schedule.timestep(schedule.sigmas), integers, rtol=0, atol=1e-9)
    fractional = torch.linspace(0, 999, 301, dtype=torch.float64)
    torch.testing.assert_close(
        schedule.timestep(schedule.sigma(fractional)), fractional, rtol=0, atol=1e-9
    )
    # Outside the trained range the timestep clamps to the ends.
    assert schedule.timestep(torch.tensor([100.0, 1e-4])).tolist() == [999.0, 0.0]


def test_sigma_to_timestep_matches_diffusers_log_interpolation() -> None:
    # Same table on both sides, so this compares only the interpolation.
    schedule = discrete_schedule(SD)
    log_sigmas = schedule.log_sigmas.numpy()
    queries = np.array([14.0, 7.5, 1.0, 0.31, 0.05, 0.03])
    expected = EulerDiscreteScheduler(**DIFFUSERS_SD)._sigma_to_t(queries, log_sigmas)
    ours = schedule.timestep(torch.from_numpy(queries)).numpy()
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)


def test_percent_to_sigma_follows_comfyui() -> None:
    schedule = discrete_schedule(SD)
    assert schedule.percent_to_sigma(0.0) == math.inf
    assert schedule.percent_to_sigma(1.0) == 0.0
    assert schedule.percent_to_sigma(0.5) == pytest.approx(
        float(schedule.sigma(torch.tensor(499.5)))
    )


@pytest.mark.parametrize("steps", [4, 10, 28])
def test_normal_equals_diffusers_linspace_spacing(steps: int) -> None:
    # ComfyUI's "normal" spaces timesteps linearly from 999 to 0, as diffusers' "linspace" does
    # (steps_offset is unused there). diffusers interpolates sigma linearly between training
    # steps, ComfyUI log-linearly; the two agree exactly when 999 / (steps - 1) is a whole number.
    ours = scheduler_sigmas(discrete_schedule(SD), "normal", steps)
    reference = _diffusers_euler_sigmas(steps, timestep_spacing="linspace")
    torch.testing.assert_close(ours, reference, rtol=RTOL, atol=0)


def test_normal_interpolates_log_sigma_between_training_steps() -> None:
    schedule = discrete_schedule(SD)
    ours = scheduler_sigmas(schedule, "normal", 20)
    timesteps = np.linspace(999, 0, 20)
    log_sigmas = schedule.log_sigmas.numpy()
    expected = np.exp(np.interp(timesteps, np.arange(1000), log_sigmas))
    np.testing.assert_allclose(ours[:-1].numpy(), expected, rtol=1e-6)
    # Linear interpolation of sigma (diffusers) is close to this but not the same.
    linear = _diffusers_euler_sigmas(20, timestep_spacing="linspace")
    assert 1e-6 < (ours - linear).abs().max().item() < 1e-3


@pytest.mark.parametrize("steps", [10, 20, 33])
@pytest.mark.parametrize(
    ("scheduler", "config"),
    [("karras", {"use_karras_sigmas": True}), ("exponential", {"use_exponential_sigmas": True})],
)
def test_karras_and_exponential_match_diffusers(
    scheduler: str, config: dict[str, bool], steps: int
) -> None:
    # With "linspace" spacing diffusers takes sigma_min / sigma_max from t = 0 / t = 999.
    ours = scheduler_sigmas(discrete_schedule(SD), scheduler, steps)
    reference = _diffusers_euler_sigmas(steps, timestep_spacing="linspace", **config)
    torch.testing.assert_close(ours, reference, rtol=RTOL, atol=0)


@pytest.mark.parametrize("steps", [8, 10, 20])
def test_simple_equals_diffusers_trailing_spacing(steps: int) -> None:
    ours = scheduler_sigmas(discrete_schedule(SD), "simple", steps)
    reference = _diffusers_euler_sigmas(steps, timestep_spacing="trailing")
    torch.testing.assert_close(ours, reference, rtol=RTOL, atol=0)


@pytest.mark.parametrize("steps", [10, 20, 50])
def test_ddim_uniform_picks_the_training_sigmas_of_ddim_leading_spacing(steps: int) -> None:
    schedule = discrete_schedule(SD)
    ours = scheduler_sigmas(schedule, "ddim_uniform", steps)
    ddim = DDIMScheduler(**DIFFUSERS_SD, timestep_spacing="leading", steps_offset=1)
    ddim.set_timesteps(steps)
    expected = schedule.sigmas[ddim.timesteps].float()
    torch.testing.assert_close(ours, torch.cat([expected, torch.zeros(1)]), rtol=1e-6, atol=0)


def test_ddim_uniform_keeps_comfyuis_extra_step_when_steps_do_not_divide_1000() -> None:
    ours = scheduler_sigmas(discrete_schedule(SD), "ddim_uniform", 7)
    # Timesteps 1, 143, ..., 995: eight of them for seven requested steps.
    assert len(ours) == 9
    assert ours[0].item() == pytest.approx(discrete_schedule(SD).sigmas[995].item(), rel=1e-6)


def test_sgm_uniform_is_normal_one_step_longer_without_its_last_point() -> None:
    schedule = discrete_schedule(SD)
    sgm = scheduler_sigmas(schedule, "sgm_uniform", 12)
    normal = scheduler_sigmas(schedule, "normal", 13)
    torch.testing.assert_close(sgm, torch.cat([normal[:-2], normal[-1:]]))


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("steps", [1, 2, 9, 25])
def test_every_scheduler_gives_a_decreasing_float32_schedule_ending_in_zero(
    scheduler: str, steps: int
) -> None:
    sigmas = scheduler_sigmas(discrete_schedule(SD), scheduler, steps)
    assert sigmas.dtype == torch.float32
    assert sigmas[-1].item() == 0.0
    assert len(sigmas) == steps + 1 or (scheduler == "ddim_uniform" and 1000 % steps)
    assert torch.all(sigmas[1:] < sigmas[:-1])
    assert sigmas[0].item() <= discrete_schedule(SD).sigma_max * (1 + 1e-6)


def test_unknown_scheduler_and_bad_steps_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown scheduler"):
        scheduler_sigmas(discrete_schedule(SD), "beta", 10)
    with pytest.raises(ValueError, match="at least 1"):
        scheduler_sigmas(discrete_schedule(SD), "normal", 0)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_partial_denoise_keeps_the_tail_of_a_longer_schedule(scheduler: str) -> None:
    sigmas = sampling_sigmas(SD, steps=6, denoise=0.6, scheduler=scheduler, sampler="euler")
    longer = scheduler_sigmas(discrete_schedule(SD), scheduler, 10)  # int(6 / 0.6) == 10
    assert len(sigmas) == 7
    torch.testing.assert_close(sigmas, longer[-7:])


def test_denoise_extremes() -> None:
    full = sampling_sigmas(SD, steps=8, denoise=1.0, scheduler="karras", sampler="euler")
    assert len(full) == 9 and full[0].item() == pytest.approx(14.614642, rel=1e-5)
    almost = sampling_sigmas(SD, steps=8, denoise=0.99995, scheduler="karras", sampler="euler")
    torch.testing.assert_close(almost, full)
    assert len(sampling_sigmas(SD, steps=8, denoise=0.0, scheduler="karras", sampler="euler")) == 0


@pytest.mark.parametrize("sampler", sorted(DISCARD_PENULTIMATE_SIGMA_SAMPLERS))
def test_dpm_2_and_uni_pc_take_one_more_step_and_drop_the_penultimate_sigma(sampler: str) -> None:
    sigmas = sampling_sigmas(SD, steps=10, denoise=1.0, scheduler="normal", sampler=sampler)
    eleven = scheduler_sigmas(discrete_schedule(SD), "normal", 11)
    assert len(sigmas) == 11
    torch.testing.assert_close(sigmas, torch.cat([eleven[:-2], eleven[-1:]]))
    partial = sampling_sigmas(SD, steps=5, denoise=0.5, scheduler="normal", sampler=sampler)
    assert len(partial) == 6
    torch.testing.assert_close(partial, torch.cat([eleven[:-2], eleven[-1:]])[-6:])
