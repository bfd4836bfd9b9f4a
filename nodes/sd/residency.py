"""Models come back to the compute device before use, after the cache moved them to the CPU."""

from __future__ import annotations

from typing import Any

import torch

from nodes.sd.devices import best_device
from nodes.sd.lowmem import COMPUTE_DTYPE_ATTR


def module_device(module: Any) -> tuple[torch.device, torch.dtype]:
    """Move `module` to the best device if the cache offloaded it; returns its device and dtype."""
    param = next(module.parameters())
    target = best_device()
    if param.device.type != target.type:
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
