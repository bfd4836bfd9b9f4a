"""Low-memory models: weights stored in fp16, each layer cast to fp32 only for its own forward pass.

This halves the memory a model holds on the CPU, where fp16 kernels are too slow to compute in.
diffusers' layerwise casting hooks do the casting (`apply_layerwise_casting`, also usable on the
transformers text encoder); normalisation layers (its default skip patterns) and anything the
hooks do not cover are kept in fp32, as they are small and precision-sensitive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

LOW_MEMORY = "fp16-weights"
# The attribute that tells `residency.module_device` which dtype inputs must have.
COMPUTE_DTYPE_ATTR = "layerwise_compute_dtype"
# An fp16 file (the usual kind) needs twice its size in fp32; this overestimates fp32 files.
_FP32_BYTES_PER_FILE_BYTE = 2


def store_in_fp16(module: Any, compute_dtype: torch.dtype = torch.float32) -> Any:
    """Keep `module`'s conv, linear and embedding weights in fp16, cast per layer to `compute_dtype`."""
    from diffusers.hooks.layerwise_casting import (
        DEFAULT_SKIP_MODULES_PATTERN,
        apply_layerwise_casting,
    )

    apply_layerwise_casting(
        module,
        storage_dtype=torch.float16,
        compute_dtype=compute_dtype,
        skip_modules_pattern=DEFAULT_SKIP_MODULES_PATTERN,
    )
    for sub in module.modules():
        if is_layerwise(sub):
            continue
        for name, param in list(sub.named_parameters(recurse=False)):
            if param.is_floating_point() and param.dtype != compute_dtype:
                sub._parameters[name] = torch.nn.Parameter(
                    param.detach().to(compute_dtype), requires_grad=False
                )
        for name, buffer in list(sub.named_buffers(recurse=False)):
            if buffer is not None and buffer.is_floating_point():
                sub._buffers[name] = buffer.to(compute_dtype)
    setattr(module, COMPUTE_DTYPE_ATTR, compute_dtype)
    return module


def is_layerwise(module: Any) -> bool:
    """Whether a layerwise-casting hook manages this module's own weights."""
    registry = getattr(module, "_diffusers_hook", None)
    return registry is not None and registry.get_hook("layerwise_casting") is not None


def fits_in_memory(checkpoint: Path) -> bool:
    """Whether the fp32 model of a checkpoint fits the CPU's cache budget (half the free RAM)."""
    from engine.placement import CPU, default_budget

    size = sum(p.stat().st_size for p in checkpoint.rglob("*")) if checkpoint.is_dir() else None
    needed = (size if size is not None else checkpoint.stat().st_size) * _FP32_BYTES_PER_FILE_BYTE
    return needed <= default_budget(CPU)
