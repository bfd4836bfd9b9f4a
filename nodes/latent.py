"""Latent nodes: empty latents, inpainting masks, and resizing."""

from __future__ import annotations

from typing import Any, Literal

from engine.context import RunContext
from engine.errors import NodeInputError
from engine.limits import limits
from engine.node import Input, Node, node
from nodes.sd.values import LATENT_CHANNELS, LATENT_SCALE, Latent, Mask
from nodes.shared_outputs import LatentOut

MAX_SIZE = 16384


def pixel_problem(width: Any, height: Any) -> str | None:
    """Why width × height is too many pixels for one image or latent, or None."""
    if not isinstance(width, int) or not isinstance(height, int):
        return None
    allowed = limits().max_pixels
    if width * height <= allowed:
        return None
    return (
        f"{width}x{height} is {width * height:,} pixels, more than the {allowed:,} allowed "
        "(LATENTGRAPH_MAX_PIXELS)"
    )


def batch_problem(batch: int) -> str:
    """The message for a batch above the limit."""
    return (
        f"a batch of {batch} is more than the {limits().max_batch} allowed (LATENTGRAPH_MAX_BATCH)"
    )


@node("EmptyLatent", category="latent")
class EmptyLatent(Node):
    """An all-zero latent batch for an image of the given size (txt2img starts here)."""

    width: int = Input(512, ge=16, le=MAX_SIZE, multiple_of=LATENT_SCALE, step=LATENT_SCALE)
    height: int = Input(512, ge=16, le=MAX_SIZE, multiple_of=LATENT_SCALE, step=LATENT_SCALE)
    batch_size: int = Input(1, ge=1, le=4096)

    @classmethod
    def check_literals(cls, literals: dict[str, Any]) -> list[tuple[str, str]]:
        found = []
        size = pixel_problem(literals.get("width"), literals.get("height"))
        if size is not None:
            found.append(("width", size))
        batch = literals.get("batch_size")
        if isinstance(batch, int) and batch > limits().max_batch:
            found.append(("batch_size", batch_problem(batch)))
        return found

    def memory_estimate(self) -> tuple[str, int] | None:
        return "cpu", self.batch_size * LATENT_CHANNELS * (self.height // LATENT_SCALE) * (
            self.width // LATENT_SCALE
        ) * 4

    def run(self, ctx: RunContext) -> LatentOut:
        import torch

        shape = (
            self.batch_size,
            LATENT_CHANNELS,
            self.height // LATENT_SCALE,
            self.width // LATENT_SCALE,
        )
        return LatentOut(latent=Latent(samples=torch.zeros(shape)))


@node("SetLatentNoiseMask", category="latent/inpaint")
class SetLatentNoiseMask(Node):
    """Limit sampling to the masked area of a latent (1 = may change), for inpainting."""

    latent: Latent = Input()
    mask: Mask = Input()

    def run(self, ctx: RunContext) -> LatentOut:
        import torch.nn.functional as F

        samples = self.latent.samples
        mask = self.mask.mask[:, None].to(samples.device, samples.dtype)  # (B, 1, H, W)
        # The mask lives at pixel resolution; the sampler needs it per latent cell.
        resized = F.interpolate(mask, size=samples.shape[-2:], mode="bilinear", align_corners=False)
        return LatentOut(latent=Latent(samples=samples, noise_mask=resized.clamp(0, 1)))


@node("UpscaleLatent", category="latent/transform")
class UpscaleLatent(Node):
    """Resize a latent to a new pixel size (0 keeps the aspect ratio from the other side)."""

    latent: Latent = Input()
    method: Literal["nearest-exact", "bilinear", "area", "bicubic"] = "nearest-exact"
    width: int = Input(1024, ge=0, le=MAX_SIZE, multiple_of=LATENT_SCALE, step=LATENT_SCALE)
    height: int = Input(1024, ge=0, le=MAX_SIZE, multiple_of=LATENT_SCALE, step=LATENT_SCALE)

    @classmethod
    def check_literals(cls, literals: dict[str, Any]) -> list[tuple[str, str]]:
        size = pixel_problem(literals.get("width"), literals.get("height"))
        return [] if size is None else [("width", size)]

    def run(self, ctx: RunContext) -> LatentOut:
        import torch.nn.functional as F

        samples = self.latent.samples  # (B, 4, h, w)
        h, w = samples.shape[-2:]
        if self.width == 0 and self.height == 0:
            raise NodeInputError("width", "width and height cannot both be 0")
        out_w = self.width // LATENT_SCALE or round(w * (self.height // LATENT_SCALE) / h)
        out_h = self.height // LATENT_SCALE or round(h * (self.width // LATENT_SCALE) / w)
        size = pixel_problem(
            out_w * LATENT_SCALE, out_h * LATENT_SCALE
        )  # one side may follow the latent's
        if size is not None:
            raise NodeInputError("width", size)
        resized = F.interpolate(samples, size=(out_h, out_w), mode=self.method)
        mask = self.latent.noise_mask
        if mask is not None:
            mask = F.interpolate(mask, size=(out_h, out_w), mode="bilinear", align_corners=False)
        return LatentOut(latent=Latent(samples=resized, noise_mask=mask))
