"""A tiled VAE decode that equals the whole decode: every convolution of the upsampling path runs
tile by tile, and every GroupNorm uses statistics over the whole image.

Written by hand because diffusers' own tiled decode (and ComfyUI's) decodes each tile as a small
image: each tile then normalises with its own GroupNorm statistics and sees zero padding at its
edges, so tiles differ in colour and the blend only spreads the seam. Here only the device's
working set is tiled: the whole image's activations wait in host memory between layers, and each
convolution reads a one-pixel halo from its tile's neighbours, so the tiles join exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from nodes.sd.residency import vae_device
from nodes.sd.vae import decoder_pixels
from nodes.sd.values import LATENT_SCALE, VaeModel

TileFn = Callable[..., torch.Tensor]
HALO = 1  # every convolution here is 3x3 (or 1x1) with stride 1: one pixel of context is enough


def decode_tiled(vae: VaeModel, samples: torch.Tensor, tile: int) -> torch.Tensor:
    """Latents (B, 4, h, w), already scaled, to images (B, 8h, 8w, 3) in [0, 1], the device holding
    one `tile`-pixel square of each layer at a time."""
    model = vae.vae
    decoder = model.decoder
    _check_decoder(decoder)
    device, dtype = vae_device(model)
    tiles = _Tiler(device, dtype, max(1, tile // LATENT_SCALE))
    with torch.no_grad():
        z = samples.to(device, dtype) / vae.scaling_factor
        if model.post_quant_conv is not None:
            z = model.post_quant_conv(z)
        # The middle block runs whole, at latent size: it is small there, and its attention has to
        # see the whole image for the result to be the whole decode's.
        x = decoder.mid_block(decoder.conv_in(z)).to("cpu")
        for block in decoder.up_blocks:
            for resnet in block.resnets:
                x = _resnet(resnet, x, tiles)
            for upsampler in block.upsamplers or ():
                x = tiles.map(upsampler, x, scale=2)
                tiles.grow(2)
        norm = _GroupNorm(decoder.conv_norm_out, tiles.statistics(decoder.conv_norm_out, x))
        x = tiles.map(lambda t: decoder.conv_out(decoder.conv_act(norm(t))), x)
    return decoder_pixels(x)


def _check_decoder(decoder: torch.nn.Module) -> None:
    """The layer-by-layer decode follows diffusers' Decoder and ResnetBlock2D; refuse anything else
    rather than decode it wrongly."""
    for block in getattr(decoder, "up_blocks", None) or ():
        for resnet in block.resnets:
            if any(
                getattr(resnet, name, None) is not None
                for name in ("upsample", "downsample", "time_emb_proj")
            ):
                raise ValueError("tiled decode: this VAE's decoder has resnets it cannot tile")
    if not hasattr(decoder, "mid_block") or not hasattr(decoder, "conv_norm_out"):
        raise ValueError(
            "tiled decode: this VAE's decoder is not a diffusers AutoencoderKL decoder"
        )


def _resnet(resnet: Any, x: torch.Tensor, tiles: _Tiler) -> torch.Tensor:
    """A diffusers ResnetBlock2D (no time embedding, no resampling), layer by layer."""
    first = _GroupNorm(resnet.norm1, tiles.statistics(resnet.norm1, x))
    h = tiles.map(lambda t: resnet.conv1(resnet.nonlinearity(first(t))), x)
    second = _GroupNorm(resnet.norm2, tiles.statistics(resnet.norm2, h))

    def join(th: torch.Tensor, tx: torch.Tensor) -> torch.Tensor:
        th = resnet.conv2(resnet.dropout(resnet.nonlinearity(second(th))))
        if resnet.conv_shortcut is not None:
            tx = resnet.conv_shortcut(tx)
        joined: torch.Tensor = (tx + th) / resnet.output_scale_factor
        return joined

    return tiles.map(join, h, x)


class _GroupNorm:
    """A GroupNorm applied with given per-(sample, group) mean and variance."""

    def __init__(self, norm: torch.nn.GroupNorm, stats: tuple[torch.Tensor, torch.Tensor]):
        self.norm, (self.mean, self.var) = norm, stats

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        groups = self.norm.num_groups
        grouped = x.float().reshape(b, groups, -1)
        grouped = (grouped - self.mean[..., None]) * torch.rsqrt(
            self.var[..., None] + self.norm.eps
        )
        y = grouped.reshape(b, c, h, w).to(x.dtype)
        if self.norm.affine:
            y = y * self.norm.weight.view(1, c, 1, 1) + self.norm.bias.view(1, c, 1, 1)
        return y


class _Tiler:
    """Runs per-tile functions over whole-image activations kept in host memory."""

    def __init__(self, device: torch.device, dtype: torch.dtype, tile: int):
        self.device, self.dtype, self.tile = device, dtype, tile

    def grow(self, factor: int) -> None:
        """The activations got `factor` times larger: keep each tile on the same image region."""
        self.tile *= factor

    def _boxes(self, height: int, width: int) -> Iterator[tuple[int, int, int, int]]:
        for top in range(0, height, self.tile):
            for left in range(0, width, self.tile):
                yield top, min(top + self.tile, height), left, min(left + self.tile, width)

    def statistics(
        self, norm: torch.nn.GroupNorm, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance per (sample, group) over the whole of `x`, for the device.

        Summed in float64 where `x` lives, tile by tile: no copy to the device (some devices have
        no float64) and no float64 copy of the whole activation."""
        b, c, height, width = x.shape
        groups = norm.num_groups
        total = torch.zeros(b, groups, dtype=torch.float64)
        squares = torch.zeros_like(total)
        for top, bottom, left, right in self._boxes(height, width):
            part = x[:, :, top:bottom, left:right].double().reshape(b, groups, -1)
            total += part.sum(-1)
            squares += (part * part).sum(-1)
        count = (c // groups) * height * width
        mean = total / count
        var = (squares / count - mean * mean).clamp_min(0.0)
        return mean.to(self.device, torch.float32), var.to(self.device, torch.float32)

    def map(self, fn: TileFn, *inputs: torch.Tensor, scale: int = 1) -> torch.Tensor:
        """`fn` over every tile of `inputs` (all the same size), each read with a halo of
        neighbouring pixels that is cut from the output; `scale` is how much `fn` enlarges."""
        b, _, height, width = inputs[0].shape
        out: torch.Tensor | None = None
        for top, bottom, left, right in self._boxes(height, width):
            y0, x0 = max(0, top - HALO), max(0, left - HALO)
            y1, x1 = min(height, bottom + HALO), min(width, right + HALO)
            parts = (t[:, :, y0:y1, x0:x1].to(self.device, self.dtype) for t in inputs)
            result = fn(*parts)
            dy, dx = (top - y0) * scale, (left - x0) * scale
            core = result[:, :, dy : dy + (bottom - top) * scale, dx : dx + (right - left) * scale]
            if out is None:
                shape = (b, result.shape[1], height * scale, width * scale)
                out = torch.empty(shape, dtype=result.dtype)
            out[:, :, top * scale : bottom * scale, left * scale : right * scale] = core.cpu()
        assert out is not None
        return out
