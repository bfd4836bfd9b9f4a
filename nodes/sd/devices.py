"""Where models run and in which precision: the best available device, fp16 on a GPU, fp32 on CPU."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DTYPE_NAMES = ("fp32", "fp16", "bf16")


def best_device() -> torch.device:
    """CUDA if present, then Apple's MPS, then the CPU."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """fp16 on a GPU; fp32 on the CPU, where half-precision kernels are many times slower."""
    import torch

    return torch.float32 if device.type == "cpu" else torch.float16


def parse_dtype(name: str | torch.dtype) -> torch.dtype:
    """A dtype from "fp32", "fp16", "bf16" (or the torch names), or a dtype passed through."""
    import torch

    if isinstance(name, torch.dtype):
        return name
    aliases = {
        "fp32": torch.float32,
        "float32": torch.float32,
        "fp16": torch.float16,
        "float16": torch.float16,
        "half": torch.float16,
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
    }
    try:
        return aliases[name.lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; use one of {', '.join(DTYPE_NAMES)}") from None


def resolve_placement(
    device: str | torch.device | None = None, dtype: str | torch.dtype | None = None
) -> tuple[torch.device, torch.dtype]:
    """The device and dtype to load onto: the given ones, else the best device and its default dtype."""
    import torch

    chosen = torch.device(device) if device is not None else best_device()
    return chosen, parse_dtype(dtype) if dtype is not None else default_dtype(chosen)
