"""ControlNet nodes: attach a ControlNet and its hint image to a conditioning."""

from __future__ import annotations

import dataclasses

from engine.context import RunContext
from engine.errors import NodeInputError
from engine.node import Input, Node, Outputs, node
from nodes.sd.values import Conditioning, ControlApplication, ControlNetModel, Image


class GuidanceOut(Outputs):
    positive: Conditioning
    negative: Conditioning


@node("ApplyControlNet", category="conditioning/controlnet")
class ApplyControlNet(Node):
    """Guide sampling with a ControlNet and a hint image, on both prompts; several can be chained."""

    positive: Conditioning = Input()
    negative: Conditioning = Input()
    control_net: ControlNetModel = Input()
    image: Image = Input()
    strength: float = Input(1.0, ge=0.0, le=10.0, step=0.01)
    start_percent: float = Input(0.0, ge=0.0, le=1.0, step=0.001)
    end_percent: float = Input(1.0, ge=0.0, le=1.0, step=0.001)

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


def _stack(conditioning: Conditioning, application: ControlApplication) -> Conditioning:
    return dataclasses.replace(conditioning, controls=(*conditioning.controls, application))
