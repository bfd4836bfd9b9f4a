"""Pixels ↔ latents through a VAE, whole or in tiles: the tiled decode is exact, the tiled encode
blends overlapping tiles to hide the seams."""

from __future__ import annotations

from collections.abc import Callable

import torch

from nodes.sd.compiled import compiled_forward
from nodes.sd.residency import vae_device
from nodes.sd.values import LATENT_SCALE, VaeModel


def decode(vae: VaeModel, samples: torch.Tensor, compiled: bool = False) -> torch.Tensor:
    """Latents (B, 4, h, w), already scaled, to images (B, 8h, 8w, 3) in [0, 1]; `compiled` runs
    the decoder through torch.compile (`--compile`)."""
    device, dtype = vae_device(vae.vae)
    run = compiled_forward(vae.vae, "decode") if compiled else vae.vae.decode
    with torch.no_grad():
        decoded: torch.Tensor = run(samples.to(device, dtype) / vae.scaling_factor).sample
    return decoder_pixels(decoded)


def decoder_pixels(decoded: torch.Tensor) -> torch.Tensor:
    """The decoder's output (B, 3, H, W) in [-1, 1] as images (B, H, W, 3) in [0, 1]."""
    return ((decoded.float() + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 2, 3, 1).contiguous()


def encode(vae: VaeModel, pixels: torch.Tensor) -> torch.Tensor:
    """Images (B, H, W, 3) in [0, 1] to scaled latents (B, 4, H/8, W/8), using the posterior's mean.

    The mean, not a sample, so that an encode is deterministic and cacheable without a seed.
    """
    device, dtype = vae_device(vae.vae)
    x = pixels[..., :3].permute(0, 3, 1, 2).to(device, dtype) * 2.0 - 1.0  # (B, 3, H, W)
    with torch.no_grad():
        mean: torch.Tensor = vae.vae.encode(x).latent_dist.mean
    return mean.float() * vae.scaling_factor


def decode_tiled(vae: VaeModel, samples: torch.Tensor, tile: int) -> torch.Tensor:
    """`decode` with the device holding one `tile`-pixel square of each layer at a time; the result
    equals the whole decode (see `vae_tiles`)."""
    from nodes.sd.vae_tiles import decode_tiled as exact  # vae_tiles imports this module

    return exact(vae, samples, tile)


def encode_tiled(vae: VaeModel, pixels: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """`encode` in overlapping pixel tiles of `tile` pixels, feathered across `overlap` pixels."""
    latents = _tiled(
        pixels,
        lambda part: encode(vae, part).permute(0, 2, 3, 1),
        tile,
        overlap,
        1 / LATENT_SCALE,
    )
    return latents.permute(0, 3, 1, 2).contiguous()


def _tiled(
    source: torch.Tensor,
    convert: Callable[[torch.Tensor], torch.Tensor],
    tile: int,
    overlap: int,
    scale: float,
) -> torch.Tensor:
    """Run `convert` over overlapping tiles of `source` (B, H, W, C) and blend the results.

    Each tile's output is weighted by a ramp that falls to near zero at edges shared with a
    neighbour, so the weighted average hides the seams that hard tile borders would leave.
    """
    _, height, width, _ = source.shape
    overlap = max(0, min(overlap, tile // 4))
    stride = max(1, tile - overlap)
    out: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    for top in _starts(height, tile, stride):
        for left in _starts(width, tile, stride):
            part = convert(source[:, top : top + tile, left : left + tile])  # (B, h', w', C')
            if out is None or weight is None:
                shape = (
                    source.shape[0],
                    round(height * scale),
                    round(width * scale),
                    part.shape[-1],
                )
                out = torch.zeros(shape, device=part.device, dtype=part.dtype)
                weight = torch.zeros(
                    (1, shape[1], shape[2], 1), device=part.device, dtype=part.dtype
                )
            y, x = round(top * scale), round(left * scale)
            h, w = part.shape[1], part.shape[2]
            ramp = _ramp(
                h,
                w,
                round(overlap * scale),
                top > 0,
                left > 0,
                top + tile < height,
                left + tile < width,
            )
            mask = ramp.to(part.device, part.dtype)[None, :, :, None]
            out[:, y : y + h, x : x + w] += part * mask
            weight[:, y : y + h, x : x + w] += mask
    assert out is not None and weight is not None
    return out / weight


def _starts(size: int, tile: int, stride: int) -> list[int]:
    """Tile origins covering [0, size); the last tile is pulled back to end exactly at `size`."""
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, stride))
    return [*starts, size - tile]


def _ramp(
    h: int, w: int, fade: int, top: bool, left: bool, bottom: bool, right: bool
) -> torch.Tensor:
    """(h, w) weights: 1 inside, rising linearly across `fade` cells on sides shared with a neighbour."""

    def axis(n: int, start: bool, end: bool) -> torch.Tensor:
        ramp = torch.ones(n)
        if fade > 0:
            rise = torch.linspace(1.0 / (fade + 1), 1.0, fade)
            if start:
                ramp[:fade] = torch.minimum(ramp[:fade], rise)
            if end:
                ramp[-fade:] = torch.minimum(ramp[-fade:], rise.flip(0))
        return ramp

    return axis(h, top, bottom)[:, None] * axis(w, left, right)[None, :]
