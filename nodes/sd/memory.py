"""Rough peak-memory estimates for the heavy SD operations, from tensor shapes alone.

They count the largest activations an operation keeps alive at once (measured shapes of the SD
UNet and VAE, not weights, which the cache already accounts for), so that a size that cannot
fit is refused before a step starts rather than after minutes of swapping.
"""

from __future__ import annotations

from typing import Any

# The SD UNet's first level: 320 channels at latent resolution; about a dozen such tensors are
# alive at once (resnet inputs, skips, attention q/k/v and outputs).
UNET_CHANNELS = 320
UNET_LIVE_TENSORS = 12
# The VAE decoder's last levels run at pixel resolution with 256 then 128 channels.
VAE_PIXEL_CHANNELS = 768


def module_itemsize(module: Any) -> int:
    """Bytes per element of a module's parameters (4 for fp32, 2 for fp16)."""
    param = next(module.parameters(), None)
    return 4 if param is None else int(param.element_size())


def unet_bytes(batch: int, latent_h: int, latent_w: int, itemsize: int, cfg: float) -> int:
    """Peak activation bytes of one UNet call on a latent batch (twice the batch with CFG)."""
    passes = 1 if cfg == 1.0 else 2
    return batch * passes * latent_h * latent_w * UNET_CHANNELS * UNET_LIVE_TENSORS * itemsize


def vae_bytes(batch: int, height: int, width: int, itemsize: int) -> int:
    """Peak activation bytes of a whole (untiled) VAE encode or decode at pixel size."""
    return batch * height * width * VAE_PIXEL_CHANNELS * itemsize


def device_name(module: Any) -> str:
    """Where a module will run: the best device (the cache may have moved it to the CPU)."""
    from nodes.sd.devices import best_device

    return str(best_device())
