"""ControlNet nodes: attach a ControlNet and its hint image to a conditioning."""

from __future__ import annotations

import dataclasses
from typing import Any

from engine.context import RunContext
from engine.errors import NodeInputError
from engine.node import Input, Node, Outputs, node
from nodes.generation import DescribesGeneration, Upstream, next_numbered
from nodes.sd.infotext import format_number
from nodes.sd.values import Conditioning, ControlApplication, ControlNetModel, Image

CONTROLNET_MODEL = "ControlNet model"  # what LoadControlNet declares, for the entry to name


class GuidanceOut(Outputs):
    positive: Conditioning
    negative: Conditioning


@node("ApplyControlNet", category="conditioning/controlnet")
class ApplyControlNet(DescribesGeneration, Node):
    """Guide sampling with a ControlNet and a hint image, on both prompts; several can be chained."""

    positive: Conditioning = Input()
    negative: Conditioning = Input()
    control_net: ControlNetModel = Input()
    image: Image = Input()
    strength: float = Input(1.0, ge=0.0, le=10.0, step=0.01)
    start_percent: float = Input(0.0, ge=0.0, le=1.0, step=0.001)
    end_percent: float = Input(1.0, ge=0.0, le=1.0, step=0.001)

    @classmethod
    def generation_parameters(cls, inputs: Upstream) -> dict[str, Any]:
        return controlnet_parameters(inputs, "positive")

    @classmethod
    def generation_inputs(cls, output: str) -> tuple[str, ...] | None:
        return (output, "control_net", "image")  # each prompt keeps its own text

    def run(self, ctx: RunContext) -> GuidanceOut:
        if self.start_percent > self.end_percent:
            raise NodeInputError("end_percent", "end_percent must not be before start_percent")
        if self.strength == 0:
            return GuidanceOut(positive=self.positive, negative=self.negative)
        hint = self.image.pixels[..., :3].permute(0, 3, 1, 2)  # (B, 3, H, W) in [0, 1]
        application = ControlApplication(
            controlnet=self.control_net,
            image=hint,
            strength=self.strength,
            start_percent=self.start_percent,
            end_percent=self.end_percent,
        )
        return GuidanceOut(
            positive=_stack(self.positive, application), negative=_stack(self.negative, application)
        )


def controlnet_parameters(inputs: Upstream, conditioning: str) -> dict[str, Any]:
    """One numbered `ControlNet N` entry, in the format of A1111's ControlNet extension."""
    strength = inputs.value("strength")
    if strength == 0:  # the node passes its prompts on untouched
        return {}
    settings = {
        "Model": inputs.parameters("control_net").get(CONTROLNET_MODEL),
        "Weight": strength,
        "Guidance Start": inputs.value("start_percent"),
        "Guidance End": inputs.value("end_percent"),
    }
    text = ", ".join(
        f"{label}: {format_number(value) if isinstance(value, float) else value}"
        for label, value in settings.items()
        if value is not None
    )
    label = next_numbered(inputs.parameters(conditioning), "ControlNet")
    return {label: text, CONTROLNET_MODEL: None}  # the model is named in the entry


def _stack(conditioning: Conditioning, application: ControlApplication) -> Conditioning:
    return dataclasses.replace(conditioning, controls=(*conditioning.controls, application))
