"""Limit classifier-free guidance to a window of noise levels (a model patch, like LoRA loaders)."""

from __future__ import annotations

import dataclasses
from typing import Any

from engine.context import RunContext
from engine.errors import NodeInputError
from engine.node import Input, Node, node
from nodes.generation import DescribesGeneration, Upstream
from nodes.sd.infotext import format_number
from nodes.sd.values import UNetModel
from nodes.shared_outputs import ModelOut

GUIDANCE_INTERVAL = "Guidance interval"  # the generation-parameters label


def _order_problem(start: Any, end: Any) -> str | None:
    if isinstance(start, (int, float)) and isinstance(end, (int, float)) and start > end:
        return f"end_percent ({end!r}) must not be before start_percent ({start!r})"
    return None


@node("GuidanceInterval", category="sampling")
class GuidanceInterval(DescribesGeneration, Node):
    """Apply CFG only between two fractions of the schedule; outside them the sampler runs the
    positive prompt alone, as at cfg 1 (Kynkäänniemi et al., 2024).

    Percents are those of ApplyControlNet: 0 is pure noise and 1 the clean image, measured on the
    model's noise levels, so the window does not move with the step count, scheduler or denoise.
    Guidance early and not late keeps the layout CFG buys without its late-step artefacts, and
    every step outside the window saves the negative prompt's forward.
    """

    model: UNetModel = Input()
    start_percent: float = Input(0.0, ge=0.0, le=1.0, step=0.001)
    end_percent: float = Input(0.5, ge=0.0, le=1.0, step=0.001)

    @classmethod
    def check_literals(cls, literals: dict[str, Any]) -> list[tuple[str, str]]:
        problem = _order_problem(literals.get("start_percent"), literals.get("end_percent"))
        return [] if problem is None else [("end_percent", problem)]

    @classmethod
    def generation_parameters(cls, inputs: Upstream) -> dict[str, Any]:
        start, end = inputs.value("start_percent"), inputs.value("end_percent")
        if start is None or end is None:
            return {}
        return {GUIDANCE_INTERVAL: f"{format_number(float(start))}-{format_number(float(end))}"}

    def run(self, ctx: RunContext) -> ModelOut:
        problem = _order_problem(self.start_percent, self.end_percent)  # linked values
        if problem is not None:
            raise NodeInputError("end_percent", problem)
        # The UNet's weights are shared, not copied: the executor counts shared storage once.
        interval = (self.start_percent, self.end_percent)
        return ModelOut(model=dataclasses.replace(self.model, guidance_interval=interval))
