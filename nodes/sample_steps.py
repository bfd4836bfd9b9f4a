"""KSamplerAdvanced's sampler: run only some steps of a schedule, with or without fresh noise."""

from __future__ import annotations

from typing import Any

from engine.context import RunContext
from engine.node import Input, Node, node
from nodes.generation import DescribesGeneration, Upstream
from nodes.sampling import (
    CONVENTION_HELP,
    Convention,
    SamplerName,
    SchedulerName,
    run_sampler,
    sampler_parameters,
)
from nodes.sd.values import Conditioning, Latent, UNetModel
from nodes.shared_outputs import LatentOut


@node("SampleSteps", category="sampling")
class SampleSteps(DescribesGeneration, Node):
    """Sample steps start_at_step..end_at_step of a `steps`-step schedule (two-pass refiner set-ups).

    Without add_noise the latent is taken as already noisy; with return_with_leftover_noise the
    result keeps the noise of the step it stopped at, for a second sampler to continue.
    """

    model: UNetModel = Input()
    positive: Conditioning = Input()
    negative: Conditioning = Input()
    latent: Latent = Input()
    add_noise: bool = True
    seed: int = Input(0, ge=0, le=2**64 - 1)
    steps: int = Input(20, ge=1, le=10000)
    cfg: float = Input(7.5, ge=0.0, le=100.0, step=0.1)
    sampler: SamplerName = "euler"
    scheduler: SchedulerName = "normal"
    start_at_step: int = Input(0, ge=0, le=10000)
    end_at_step: int = Input(10000, ge=0, le=10000)
    return_with_leftover_noise: bool = False
    convention: Convention = Input("latentgraph", tooltip=CONVENTION_HELP)

    @classmethod
    def generation_parameters(cls, inputs: Upstream) -> dict[str, Any]:
        return sampler_parameters(inputs)

    def run(self, ctx: RunContext) -> LatentOut:
        latent = run_sampler(
            self,
            ctx,
            start_step=self.start_at_step,
            end_step=self.end_at_step,
            add_noise=self.add_noise,
            leftover_noise=self.return_with_leftover_noise,
        )
        return LatentOut(latent=latent)
