"""VAE nodes: images to latents and back, whole or in tiles."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.context import RunContext
from engine.errors import NodeInputError
from engine.node import Input, Node, node
from nodes.sd.values import LATENT_SCALE, Image, Latent, VaeModel
from nodes.shared_outputs import ImageOut, LatentOut

if TYPE_CHECKING:
    import torch


@node("VAEEncode", category="latent")
class VAEEncode(Node):
    """Encode images into latents (img2img starts here); sizes are cropped to multiples of 8."""

    vae: VaeModel = Input()
    image: Image = Input()

    def memory_estimate(self) -> tuple[str, int] | None:
        from nodes.sd.memory import device_name, module_itemsize, vae_bytes

        batch, height, width = self.image.pixels.shape[:3]
        itemsize = module_itemsize(self.vae.vae)
        return device_name(self.vae.vae), vae_bytes(batch, height, width, itemsize)

    def run(self, ctx: RunContext) -> LatentOut:
        from nodes.sd import vae

        return LatentOut(latent=Latent(samples=vae.encode(self.vae, _crop8(self.image))))


@node("VAEDecode", category="latent")
class VAEDecode(Node):
    """Decode latents into images."""

    vae: VaeModel = Input()
    latent: Latent = Input()

    def memory_estimate(self) -> tuple[str, int] | None:
        from nodes.sd.memory import device_name, module_itemsize, vae_bytes

        batch, _, h, w = self.latent.samples.shape
        itemsize = module_itemsize(self.vae.vae)
        return device_name(self.vae.vae), vae_bytes(
            batch, h * LATENT_SCALE, w * LATENT_SCALE, itemsize
        )

    def run(self, ctx: RunContext) -> ImageOut:
        from nodes.sd import vae

        pixels = vae.decode(self.vae, self.latent.samples, compiled=ctx.compute.compile)
        return ImageOut(image=Image(pixels=pixels))


@node("VAEEncodeTiled", category="latent")
class VAEEncodeTiled(Node):
    """Encode large images tile by tile, blending overlaps so that no seams show."""

    vae: VaeModel = Input()
    image: Image = Input()
    tile_size: int = Input(512, ge=64, le=4096, multiple_of=64, step=64)
    overlap: int = Input(
        64,
        ge=0,
        le=4096,
        multiple_of=LATENT_SCALE,
        step=LATENT_SCALE,
        tooltip="clamped to tile_size/4",
    )

    def run(self, ctx: RunContext) -> LatentOut:
        from nodes.sd import vae

        samples = vae.encode_tiled(self.vae, _crop8(self.image), self.tile_size, self.overlap)
        return LatentOut(latent=Latent(samples=samples))


@node("VAEDecodeTiled", category="latent")
class VAEDecodeTiled(Node):
    """Decode large latents a tile at a time on the device; the picture equals the whole decode's,
    with no seams."""

    vae: VaeModel = Input()
    latent: Latent = Input()
    tile_size: int = Input(512, ge=64, le=4096, multiple_of=64, step=64)
    overlap: int = Input(
        64,
        ge=0,
        le=4096,
        multiple_of=LATENT_SCALE,
        step=LATENT_SCALE,
        tooltip="not needed: the tiles read their neighbours' edges, so they join exactly "
        "(kept so that ComfyUI workflows load)",
    )

    def run(self, ctx: RunContext) -> ImageOut:
        from nodes.sd import vae

        pixels = vae.decode_tiled(self.vae, self.latent.samples, self.tile_size)
        return ImageOut(image=Image(pixels=pixels))


def _crop8(image: Image) -> torch.Tensor:
    """Pixels cropped (centred) to multiples of 8, which the VAE needs."""
    pixels = image.pixels  # (B, H, W, 3)
    height, width = pixels.shape[1], pixels.shape[2]
    if height < LATENT_SCALE or width < LATENT_SCALE:
        raise NodeInputError("image", f"a {width}x{height} image is too small to encode")
    top, left = (height % LATENT_SCALE) // 2, (width % LATENT_SCALE) // 2
    return pixels[
        :, top : top + height - height % LATENT_SCALE, left : left + width - width % LATENT_SCALE
    ]
