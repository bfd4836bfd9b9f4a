"""Noise levels for sampling: the discrete SD training schedule and the sigma schedules built on it.

A UNet is trained on 1000 discrete timesteps; k-diffusion samplers instead walk a decreasing list
of noise levels sigma. This module maps between the two (by interpolating log sigma, as
k-diffusion and ComfyUI do) and builds the sigma lists ComfyUI's schedulers produce, so that a
(steps, scheduler, sampler, denoise) setting gives the same noise levels here as there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import torch

from nodes.sd.values import NoiseSchedule

SCHEDULERS: tuple[str, ...] = (
    "normal",
    "karras",
    "exponential",
    "sgm_uniform",
    "simple",
    "ddim_uniform",
)

# Samplers that take one step more than asked and drop the second-to-last sigma, as ComfyUI does;
# their last step would otherwise land on a tiny sigma where a second-order step is wasted.
DISCARD_PENULTIMATE_SIGMA_SAMPLERS = frozenset({"dpm_2", "uni_pc", "uni_pc_bh2"})

# Above this, ComfyUI treats `denoise` as a full denoise.
_FULL_DENOISE = 0.9999


@dataclass(frozen=True, eq=False)
class DiscreteSchedule:
    """The sigmas a UNet was trained on, indexed by timestep, with the sigma <-> timestep maps."""

    sigmas: torch.Tensor  # (T,) float64, increasing with the timestep

    @cached_property
    def log_sigmas(self) -> torch.Tensor:
        return self.sigmas.log()

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """The (fractional) timestep of each sigma, interpolating linearly in log sigma."""
        log_sigmas = self.log_sigmas
        log_sigma = sigma.detach().to("cpu", torch.float64).clamp(min=1e-10).log()
        # Index of the training log sigma just below each query, kept inside the table.
        low = torch.searchsorted(log_sigmas, log_sigma, right=True) - 1
        low = low.clamp(0, len(log_sigmas) - 2)
        high = low + 1
        weight = (log_sigmas[low] - log_sigma) / (log_sigmas[low] - log_sigmas[high])
        weight = weight.clamp(0.0, 1.0)
        return (1.0 - weight) * low + weight * high

    def nearest_timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """The trained timestep whose log sigma is nearest each sigma's (ComfyUI's convention).

        Compared in float32, the precision ComfyUI keeps its sigma table in.
        """
        log_sigmas = self.log_sigmas.to(torch.float32)
        log_sigma = sigma.detach().to("cpu", torch.float32).clamp(min=1e-10).log()
        distances = (log_sigma.reshape(-1, 1) - log_sigmas.reshape(1, -1)).abs()
        return distances.argmin(dim=1).reshape(sigma.shape).to(torch.float64)

    def sigma(self, timestep: torch.Tensor) -> torch.Tensor:
        """The sigma at each (fractional) timestep, interpolating linearly in log sigma."""
        t = timestep.detach().to("cpu", torch.float64).clamp(0, len(self.sigmas) - 1)
        low = t.floor().long()
        high = t.ceil().long()
        frac = t - low
        log_sigma = (1.0 - frac) * self.log_sigmas[low] + frac * self.log_sigmas[high]
        return log_sigma.exp()

    def percent_to_sigma(self, percent: float) -> float:
        """The sigma reached after `percent` of the model's timestep range (0 -> sigma_max, 1 -> 0)."""
        if percent <= 0.0:
            return math.inf
        if percent >= 1.0:
            return 0.0
        last = len(self.sigmas) - 1
        return float(self.sigma(_scalar((1.0 - percent) * last)))

    def in_window(self, sigma: float, start_percent: float, end_percent: float) -> bool:
        """Whether `sigma` lies between two fractions of the timestep range (ends included), as
        ComfyUI measures ControlNet windows: in noise levels, not in steps."""
        return self.percent_to_sigma(end_percent) <= sigma <= self.percent_to_sigma(start_percent)


def training_sigmas(schedule: NoiseSchedule) -> torch.Tensor:
    """sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) for each training timestep, in float64."""
    n = schedule.num_train_timesteps
    if schedule.beta_schedule == "scaled_linear":
        # Linear in sqrt(beta): the latent-diffusion schedule.
        betas = (
            torch.linspace(schedule.beta_start**0.5, schedule.beta_end**0.5, n, dtype=torch.float64)
            ** 2
        )
    elif schedule.beta_schedule == "linear":
        betas = torch.linspace(schedule.beta_start, schedule.beta_end, n, dtype=torch.float64)
    else:
        raise ValueError(
            f"unsupported beta schedule {schedule.beta_schedule!r}; use 'scaled_linear' or 'linear'"
        )
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return ((1.0 - alphas_cumprod) / alphas_cumprod).sqrt()


@lru_cache(maxsize=8)
def discrete_schedule(schedule: NoiseSchedule) -> DiscreteSchedule:
    """The discrete schedule for a model's training constants (cached; they rarely differ)."""
    return DiscreteSchedule(training_sigmas(schedule))


def _scalar(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float64)


def _with_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas.to(torch.float32), sigmas.new_zeros(1, dtype=torch.float32)])


def sigmas_normal(schedule: DiscreteSchedule, steps: int) -> torch.Tensor:
    """Timesteps evenly spaced from t(sigma_max) to t(sigma_min), mapped back to sigmas, then 0."""
    start = float(schedule.timestep(_scalar(schedule.sigma_max)))
    end = float(schedule.timestep(_scalar(schedule.sigma_min)))
    if math.isclose(float(schedule.sigma(_scalar(end))), 0.0, abs_tol=1e-5):
        # A schedule that already reaches zero needs no appended 0, only one more point.
        timesteps = torch.linspace(start, end, steps + 1, dtype=torch.float64)
        return schedule.sigma(timesteps).to(torch.float32)
    timesteps = torch.linspace(start, end, steps, dtype=torch.float64)
    return _with_zero(schedule.sigma(timesteps))


def sigmas_sgm_uniform(schedule: DiscreteSchedule, steps: int) -> torch.Tensor:
    """Like `normal` over steps + 1 points with the last (sigma_min) left out, then 0."""
    start = float(schedule.timestep(_scalar(schedule.sigma_max)))
    end = float(schedule.timestep(_scalar(schedule.sigma_min)))
    timesteps = torch.linspace(start, end, steps + 1, dtype=torch.float64)[:-1]
    return _with_zero(schedule.sigma(timesteps))


def sigmas_karras(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """The schedule of Karras et al. (2022), eq. 5: linear in sigma^(1/rho), then 0."""
    ramp = torch.linspace(0.0, 1.0, steps, dtype=torch.float64)
    max_inv_rho = sigma_max ** (1.0 / rho)
    min_inv_rho = sigma_min ** (1.0 / rho)
    return _with_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)


def sigmas_exponential(steps: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Sigmas evenly spaced in log sigma from sigma_max to sigma_min, then 0."""
    log_sigmas = torch.linspace(
        math.log(sigma_max), math.log(sigma_min), steps, dtype=torch.float64
    )
    return _with_zero(log_sigmas.exp())


def sigmas_simple(schedule: DiscreteSchedule, steps: int) -> torch.Tensor:
    """Every (T / steps)-th training sigma, counting down from the top, then 0."""
    stride = len(schedule.sigmas) / steps
    indices = [len(schedule.sigmas) - 1 - int(i * stride) for i in range(steps)]
    return _with_zero(schedule.sigmas[indices])


def sigmas_ddim_uniform(schedule: DiscreteSchedule, steps: int) -> torch.Tensor:
    """Training sigmas at timesteps 1, 1 + k, 1 + 2k, ... (k = T // steps), highest first, then 0.

    As in ComfyUI (and DDIM's "leading" spacing with offset 1), when T is not a multiple of
    `steps` this can give one step more than asked.
    """
    if math.isclose(float(schedule.sigmas[1]), 0.0, abs_tol=1e-5):
        steps += 1
        tail: list[float] = []
    else:
        tail = [0.0]
    stride = max(len(schedule.sigmas) // steps, 1)
    picked = schedule.sigmas[1::stride].flip(0).to(torch.float32)
    return torch.cat([picked, torch.tensor(tail, dtype=torch.float32)])


def scheduler_sigmas(schedule: DiscreteSchedule, scheduler: str, steps: int) -> torch.Tensor:
    """The full schedule of `steps` steps for a scheduler name: float32, ending in 0."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if scheduler == "normal":
        return sigmas_normal(schedule, steps)
    if scheduler == "karras":
        return sigmas_karras(steps, schedule.sigma_min, schedule.sigma_max)
    if scheduler == "exponential":
        return sigmas_exponential(steps, schedule.sigma_min, schedule.sigma_max)
    if scheduler == "sgm_uniform":
        return sigmas_sgm_uniform(schedule, steps)
    if scheduler == "simple":
        return sigmas_simple(schedule, steps)
    if scheduler == "ddim_uniform":
        return sigmas_ddim_uniform(schedule, steps)
    raise ValueError(f"unknown scheduler {scheduler!r}; use one of {', '.join(SCHEDULERS)}")


def sampling_sigmas(
    schedule: NoiseSchedule, *, steps: int, denoise: float, scheduler: str, sampler: str
) -> torch.Tensor:
    """The sigmas a KSampler run walks: `steps` steps ending in 0, or an empty tensor for denoise 0.

    With denoise < 1 the schedule is built for int(steps / denoise) steps and only its last
    steps + 1 sigmas are kept, so a partial denoise starts part-way down the same curve.
    """
    discrete = discrete_schedule(schedule)

    def full(n: int) -> torch.Tensor:
        if sampler in DISCARD_PENULTIMATE_SIGMA_SAMPLERS:
            sigmas = scheduler_sigmas(discrete, scheduler, n + 1)
            return torch.cat([sigmas[:-2], sigmas[-1:]])
        return scheduler_sigmas(discrete, scheduler, n)

    if denoise > _FULL_DENOISE:
        return full(steps)
    if denoise <= 0.0:
        return torch.zeros(0, dtype=torch.float32)
    return full(int(steps / denoise))[-(steps + 1) :]
