"""Resize latents and images by a factor (the sized versions are UpscaleLatent and ScaleImage)."""

from __future__ import annotations

from typing import Literal

from engine.context import RunContext
from engine.node import Input, Node, node
from nodes.sd.values import Image, Latent
from nodes.shared_outputs import ImageOut, LatentOut


@node("UpscaleLatentBy", category="latent/transform")
class UpscaleLatentBy(Node):
    """Resize a latent by a factor; each side is rounded to whole latent cells."""

    latent: Latent = Input()
    method: Literal["nearest-exact", "bilinear", "area", "bicubic"] = "nearest-exact"
    scale_by: float = Input(1.5, ge=0.01, le=8.0, step=0.01)

    def run(self, ctx: RunContext) -> LatentOut:
        import torch.nn.functional as F

        samples = self.latent.samples  # (B, 4, h, w)
        size = (round(samples.shape[-2] * self.scale_by), round(samples.shape[-1] * self.scale_by))
        resized = F.interpolate(samples, size=size, mode=self.method)
        mask = self.latent.noise_mask
        if mask is not None:
            mask = F.interpolate(mask, size=size, mode="bilinear", align_corners=False)
        return LatentOut(latent=Latent(samples=resized, noise_mask=mask))


@node("ScaleImageBy", category="image/transform")
class ScaleImageBy(Node):
    """Resize images by a factor; each side is rounded to whole pixels."""

    image: Image = Input()
    method: Literal["nearest-exact", "bilinear", "area", "bicubic", "lanczos"] = "bilinear"
    scale_by: float = Input(1.0, ge=0.01, le=8.0, step=0.01)

    def run(self, ctx: RunContext) -> ImageOut:
        from nodes.image import ScaleImage

        pixels = self.image.pixels
        scale = ScaleImage()
        scale.image, scale.method = self.image, self.method
        scale.width = max(1, round(pixels.shape[2] * self.scale_by))
        scale.height = max(1, round(pixels.shape[1] * self.scale_by))
        return ImageOut(image=scale.run(ctx).image)
