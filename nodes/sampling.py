"""The sampler node: denoise a latent with a UNet, guided by positive and negative conditioning."""

from __future__ import annotations

from functools import partial
from typing import Any, Literal, get_args

from engine.context import RunContext
from engine.errors import NodeInputError
from engine.node import Input, Node, node
from nodes.generation import NEGATIVE_PROMPT, PROMPT, DescribesGeneration, Upstream
from nodes.sd.infotext import A1111_SAMPLERS, A1111_SCHEDULES
from nodes.sd.values import Conditioning, Latent, UNetModel
from nodes.shared_outputs import LatentOut

# The names are spelled out here so that the catalog loads without torch; a test checks that
# they match the sampling library.
SamplerName = Literal[
    "euler",
    "euler_ancestral",
    "heun",
    "dpm_2",
    "lms",
    "dpmpp_2m",
    "dpmpp_2m_sde",
    "dpmpp_sde",
    "ddim",
    "uni_pc",
    "uni_pc_bh2",
]
SchedulerName = Literal["normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform"]
Convention = Literal["latentgraph", "comfyui"]
CONVENTION_HELP = (
    "comfyui: nearest trained timestep and ComfyUI's CPU per-step noise, for ComfyUI's pixels"
)
SAMPLER_NAMES: tuple[str, ...] = get_args(SamplerName)
# A partial denoise builds a schedule of steps / denoise steps and keeps the last ones; below
# this it would build millions of them (1e-9 asked for a 16 GB schedule).
MIN_DENOISE = 0.001
MAX_SCHEDULE_STEPS = 100_000
SCHEDULER_NAMES: tuple[str, ...] = get_args(SchedulerName)


def _check_denoise(value: float, _paths: Any) -> str | None:
    if 0.0 < value < MIN_DENOISE:
        return f"denoise must be 0 or at least {MIN_DENOISE}, not {value!r}"
    return None


def _schedule_problem(steps: Any, denoise: Any) -> str | None:
    if not isinstance(steps, int) or not isinstance(denoise, (int, float)) or denoise <= 0:
        return None
    if denoise < MIN_DENOISE or steps / denoise > MAX_SCHEDULE_STEPS:
        lowest = steps / MAX_SCHEDULE_STEPS
        return (
            f"with {steps} steps, denoise {denoise!r} needs a schedule of more than "
            f"{MAX_SCHEDULE_STEPS} steps; use denoise 0 or at least {max(lowest, MIN_DENOISE):.4g}"
        )
    return None


@node("Sample", category="sampling")
class Sample(DescribesGeneration, Node):
    """Denoise a latent: txt2img from an empty latent, img2img with denoise below 1.

    The initial noise is drawn on the CPU from the seed in one draw for the whole batch, so a
    seed gives the same picture on every device and as in ComfyUI.
    """

    model: UNetModel = Input()
    positive: Conditioning = Input()
    negative: Conditioning = Input()
    latent: Latent = Input()
    seed: int = Input(0, ge=0, le=2**64 - 1)
    steps: int = Input(20, ge=1, le=10000)
    cfg: float = Input(
        7.5, ge=0.0, le=100.0, step=0.1, tooltip="guidance scale; 1 skips the negative"
    )
    sampler: SamplerName = "euler"
    scheduler: SchedulerName = "normal"
    denoise: float = Input(1.0, ge=0.0, le=1.0, step=0.01, check=_check_denoise)
    convention: Convention = Input("latentgraph", tooltip=CONVENTION_HELP)

    @classmethod
    def check_literals(cls, literals: dict[str, Any]) -> list[tuple[str, str]]:
        problem = _schedule_problem(literals.get("steps"), literals.get("denoise"))
        return [] if problem is None else [("denoise", problem)]

    @classmethod
    def generation_parameters(cls, inputs: Upstream) -> dict[str, Any]:
        denoise = inputs.value("denoise")
        partial_denoise = denoise if denoise is not None and denoise < 1 else None
        return sampler_parameters(inputs) | {"Denoising strength": partial_denoise}

    def memory_estimate(self) -> tuple[str, int] | None:
        from nodes.sd.memory import device_name, module_itemsize, unet_bytes

        batch, _, h, w = self.latent.samples.shape
        unet = self.model.unet
        return device_name(unet), unet_bytes(batch, h, w, module_itemsize(unet), self.cfg)

    def run(self, ctx: RunContext) -> LatentOut:
        problem = _schedule_problem(self.steps, self.denoise)  # linked values are checked here
        if problem is not None:
            raise NodeInputError("denoise", problem)
        return LatentOut(latent=run_sampler(self, ctx, denoise=self.denoise))


def sampler_parameters(inputs: Upstream) -> dict[str, Any]:
    """The generation parameters of a sampler node's common inputs: prompts, steps, seed, ..."""
    sampler, scheduler = inputs.value("sampler"), inputs.value("scheduler")
    return {
        PROMPT: inputs.parameters("positive").get(PROMPT),
        NEGATIVE_PROMPT: inputs.parameters("negative").get(PROMPT),
        "Steps": inputs.value("steps"),
        "Sampler": A1111_SAMPLERS.get(sampler, sampler),
        "Schedule type": A1111_SCHEDULES.get(scheduler, scheduler),
        "CFG scale": inputs.value("cfg"),
        "Seed": inputs.value("seed"),
    }


def run_sampler(sampler: Any, ctx: RunContext, **schedule: Any) -> Latent:
    """Sample with a sampler node's common inputs (model, prompts, latent, seed, steps, cfg,
    sampler, scheduler, convention) plus `schedule` options, reporting each step to `ctx`; the
    models run through torch.compile when the executor's compute options ask for it."""
    from nodes.sd.preview import latent_preview
    from nodes.sd.residency import module_device
    from nodes.sd.sample import sample

    module_device(sampler.model.unet)
    for control in (*sampler.positive.controls, *sampler.negative.controls):
        module_device(control.controlnet.controlnet)

    def on_step(index: int, total: int, denoised: Any) -> None:
        # A thunk: the preview is only drawn if a consumer (the server) asks for it.
        ctx.progress(index + 1, total, preview=partial(latent_preview, denoised.detach().clone()))

    return sample(
        sampler.model,
        sampler.positive,
        sampler.negative,
        sampler.latent,
        seed=sampler.seed,
        steps=sampler.steps,
        cfg=sampler.cfg,
        sampler_name=sampler.sampler,
        scheduler=sampler.scheduler,
        on_step=on_step,
        convention=sampler.convention,
        compile_models=ctx.compute.compile,
        **schedule,
    )
