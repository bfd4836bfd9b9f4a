"""Paste one image onto another through a mask: the last step of an inpainting graph."""

from __future__ import annotations

from engine.context import RunContext
from engine.errors import NodeInputError
from engine.node import Input, Node, Outputs, node
from nodes.sd.values import Image, Mask


class CompositeOut(Outputs):
    image: Image


@node("CompositeMasked", category="image")
class CompositeMasked(Node):
    """`source` where the mask is 1, `destination` where it is 0, blended in between.

    After inpainting, this puts the untouched pixels back exactly: a VAE round trip alone would
    shift them slightly, and the decoder lets the new content bleed a little past the mask.
    """

    destination: Image = Input()
    source: Image = Input()
    mask: Mask = Input()

    def run(self, ctx: RunContext) -> CompositeOut:
        destination, source = self.destination.pixels, self.source.pixels
        mask = self.mask.mask
        if source.shape != destination.shape:
            raise NodeInputError(
                "source",
                f"source is {tuple(source.shape[1:3])} px but destination is "
                f"{tuple(destination.shape[1:3])} px; scale one to the other first",
            )
        if mask.shape[-2:] != destination.shape[1:3]:
            raise NodeInputError(
                "mask",
                f"mask is {tuple(mask.shape[-2:])} px but the images are "
                f"{tuple(destination.shape[1:3])} px",
            )
        if mask.shape[0] not in (1, destination.shape[0]):
            raise NodeInputError(
                "mask", f"{mask.shape[0]} masks for a batch of {destination.shape[0]} images"
            )
        weight = mask.to(destination.device, destination.dtype).unsqueeze(-1)  # (B, H, W, 1)
        blended = destination * (1 - weight) + source.to(destination.device) * weight
        return CompositeOut(image=Image(pixels=blended))
