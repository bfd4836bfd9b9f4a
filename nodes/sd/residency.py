"""Models come back to the compute device before use, after the cache moved them to the CPU."""

from __future__ import annotations

from typing import Any

import torch

from nodes.sd.devices import best_device
from nodes.sd.lowmem import COMPUTE_DTYPE_ATTR


def module_device(module: Any) -> tuple[torch.device, torch.dtype]:
    """The device and dtype `module` runs with; moves it whole to the best device if any part of
    it is elsewhere (in an executor run the cache has already onloaded it, so this only checks).

    Every tensor is checked, not only the first: a LoRA copy shares most weights with its base
    model, so offloading the base moves those and leaves the copy's own patched layers behind.
    """
    target = best_device()
    tensors = [*module.parameters(), *module.buffers()]
    if any(t.device.type != target.type for t in tensors):
        module.to(target)
    param = next(module.parameters())
    # A low-memory model stores fp16 weights but computes in this dtype (see lowmem.py).
    return param.device, getattr(module, COMPUTE_DTYPE_ATTR, None) or param.dtype


def vae_device(vae: Any) -> tuple[torch.device, torch.dtype]:
    """Like `module_device`, but a VAE that overflows in fp16 (SDXL's) is upcast to fp32 once."""
    device, dtype = module_device(vae)
    if dtype == torch.float16 and getattr(vae.config, "force_upcast", False):
        vae.to(torch.float32)
        dtype = torch.float32
    return device, dtype
