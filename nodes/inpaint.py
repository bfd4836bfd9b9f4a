"""Inpainting nodes: encode an image with its masked area greyed out, and load a mask from an image."""

from __future__ import annotations

import math
from typing import Literal

from engine.context import RunContext
from engine.errors import NodeInputError
from engine.node import Input, Node, Outputs, node
from nodes.image import LoadImage, _input_images
from nodes.sd.values import LATENT_SCALE, Image, Latent, Mask, VaeModel
from nodes.shared_outputs import LatentOut

CHANNELS = {"red": 0, "green": 1, "blue": 2}


class MaskOut(Outputs):
    mask: Mask


@node("VAEEncodeForInpaint", category="latent/inpaint")
class VAEEncodeForInpaint(Node):
    """Encode an image for inpainting: the masked area is set to grey and becomes the noise mask.

    The mask is rounded to 0/1 and grown by `grow_mask_by` pixels so the new content blends in;
    sizes are cropped (centred) to multiples of 8.
    """

    vae: VaeModel = Input()
    image: Image = Input()
    mask: Mask = Input()
    grow_mask_by: int = Input(6, ge=0, le=64)

    def run(self, ctx: RunContext) -> LatentOut:
        import torch
        import torch.nn.functional as F

        from nodes.sd import vae

        pixels = self.image.pixels.clone()  # (B, H, W, 3)
        height, width = pixels.shape[1], pixels.shape[2]
        if height < LATENT_SCALE or width < LATENT_SCALE:
            raise NodeInputError("image", f"a {width}x{height} image is too small to encode")
        mask = self.mask.mask.reshape(-1, 1, *self.mask.mask.shape[-2:]).to(pixels.dtype)
        mask = F.interpolate(mask, size=(height, width), mode="bilinear")  # (B, 1, H, W)
        crop_h, crop_w = height - height % LATENT_SCALE, width - width % LATENT_SCALE
        top, left = (height % LATENT_SCALE) // 2, (width % LATENT_SCALE) // 2
        pixels = pixels[:, top : top + crop_h, left : left + crop_w]
        mask = mask[:, :, top : top + crop_h, left : left + crop_w].round()
        grown = mask
        if self.grow_mask_by > 0:
            size = self.grow_mask_by
            kernel = torch.ones((1, 1, size, size), dtype=mask.dtype)
            grown = F.conv2d(mask, kernel, padding=math.ceil((size - 1) / 2)).clamp(0, 1)
        keep = (1.0 - mask).squeeze(1).unsqueeze(-1)  # (B, H, W, 1)
        pixels = (pixels - 0.5) * keep + 0.5  # masked pixels become mid grey
        samples = vae.encode(self.vae, pixels)
        noise_mask = grown[
            :, :, :crop_h, :crop_w
        ].round()  # pixel resolution; the sampler resizes it
        return LatentOut(latent=Latent(samples=samples, noise_mask=noise_mask))


@node("LoadImageMask", category="image", volatile=True)
class LoadImageMask(LoadImage):
    """Load one channel of an image in the input folder as a mask; for alpha, transparent = 1."""

    image: str = Input(choices=_input_images, tooltip="a file in the input folder")
    channel: Literal["alpha", "red", "green", "blue"] = "alpha"

    def run(self, ctx: RunContext) -> MaskOut:  # type: ignore[override]
        loaded = super().run(ctx)
        if self.channel == "alpha":
            return MaskOut(mask=Mask(mask=loaded.mask.mask[:1]))
        pixels = loaded.image.pixels[:1]  # the first frame, as ComfyUI reads it
        return MaskOut(mask=Mask(mask=pixels[..., CHANNELS[self.channel]].contiguous()))
