"""Conditioning nodes: combine prompts, restrict one to an area, zero one out, old-style ControlNet."""

from __future__ import annotations

import dataclasses
from typing import Any

from engine.context import RunContext
from engine.node import Input, Node, Outputs, node
from nodes.controlnet import controlnet_parameters
from nodes.generation import DescribesGeneration, Upstream
from nodes.sd.values import LATENT_SCALE, Conditioning, ControlApplication, ControlNetModel, Image

MAX_SIZE = 16384


class ConditioningOut(Outputs):
    conditioning: Conditioning


@node("CombineConditioning", category="conditioning")
class CombineConditioning(Node):
    """Use two prompts at once: the sampler averages their predictions, each within its area."""

    first: Conditioning = Input()
    second: Conditioning = Input()

    def run(self, ctx: RunContext) -> ConditioningOut:
        combined = dataclasses.replace(
            self.first, combined=(*self.first.combined, *self.second.entries())
        )
        return ConditioningOut(conditioning=combined)


@node("SetConditioningArea", category="conditioning")
class SetConditioningArea(Node):
    """Apply a prompt only inside a rectangle (pixels, multiples of 8), weighted by strength."""

    conditioning: Conditioning = Input()
    width: int = Input(64, ge=64, le=MAX_SIZE, multiple_of=LATENT_SCALE, step=LATENT_SCALE)
    height: int = Input(64, ge=64, le=MAX_SIZE, multiple_of=LATENT_SCALE, step=LATENT_SCALE)
    x: int = Input(0, ge=0, le=MAX_SIZE, multiple_of=LATENT_SCALE, step=LATENT_SCALE)
    y: int = Input(0, ge=0, le=MAX_SIZE, multiple_of=LATENT_SCALE, step=LATENT_SCALE)
    strength: float = Input(1.0, ge=0.0, le=10.0, step=0.01)

    def run(self, ctx: RunContext) -> ConditioningOut:
        area = (
            self.height // LATENT_SCALE,
            self.width // LATENT_SCALE,
            self.y // LATENT_SCALE,
            self.x // LATENT_SCALE,
        )
        entries = [
            dataclasses.replace(e, area=area, strength=self.strength)
            for e in self.conditioning.entries()
        ]
        head = dataclasses.replace(entries[0], combined=tuple(entries[1:]))
        return ConditioningOut(conditioning=head)


@node("ZeroConditioning", category="conditioning")
class ZeroConditioning(Node):
    """The same conditioning with its embeddings (and SDXL pooled output) set to zero."""

    conditioning: Conditioning = Input()

    def run(self, ctx: RunContext) -> ConditioningOut:
        entries = [
            dataclasses.replace(
                e,
                embeds=e.embeds.new_zeros(e.embeds.shape),
                pooled=None if e.pooled is None else e.pooled.new_zeros(e.pooled.shape),
            )
            for e in self.conditioning.entries()
        ]
        return ConditioningOut(
            conditioning=dataclasses.replace(entries[0], combined=tuple(entries[1:]))
        )


@node("ApplyControlNetToPrompt", category="conditioning/controlnet")
class ApplyControlNetToPrompt(DescribesGeneration, Node):
    """Guide with a ControlNet attached to one prompt; it also guides a negative that has none.

    This is ComfyUI's original "Apply ControlNet"; `ApplyControlNet` sets both prompts explicitly.
    """

    conditioning: Conditioning = Input()
    control_net: ControlNetModel = Input()
    image: Image = Input()
    strength: float = Input(1.0, ge=0.0, le=10.0, step=0.01)

    @classmethod
    def generation_parameters(cls, inputs: Upstream) -> dict[str, Any]:
        return controlnet_parameters(inputs, "conditioning")

    def run(self, ctx: RunContext) -> ConditioningOut:
        if self.strength == 0:
            return ConditioningOut(conditioning=self.conditioning)
        application = ControlApplication(
            controlnet=self.control_net,
            image=self.image.pixels[..., :3].permute(0, 3, 1, 2),  # (B, 3, H, W)
            strength=self.strength,
            to_uncond=True,
        )
        entries = [
            dataclasses.replace(e, controls=(*e.controls, application))
            for e in self.conditioning.entries()
        ]
        return ConditioningOut(
            conditioning=dataclasses.replace(entries[0], combined=tuple(entries[1:]))
        )
