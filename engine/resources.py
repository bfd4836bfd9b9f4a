"""Memory a node may use: the device budget a node's estimate is checked against before it runs."""

from __future__ import annotations

import sys

from engine.limits import format_bytes, limits
from engine.placement import CPU, available_ram


def device_budget(device: str) -> int:
    """Bytes one node may use on `device`: $LATENTGRAPH_MEMORY_BUDGET, else what is free now."""
    configured = limits().memory_budget
    if configured > 0:
        return configured
    torch = sys.modules.get("torch")
    if torch is not None and device.startswith("cuda") and torch.cuda.is_available():
        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        free, _total = torch.cuda.mem_get_info(index)
        # Memory torch holds in its caching allocator but does not use is free to this node.
        reserved = torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
        return int(free + reserved)
    if device == CPU or device == "mps":
        return available_ram()
    return available_ram()


def memory_problem(device: str, needed: int) -> str | None:
    """Why a node needing `needed` bytes on `device` must not start, or None if it fits."""
    budget = device_budget(device)
    if needed <= budget:
        return None
    return (
        f"needs about {format_bytes(needed)} on {device}, but only {format_bytes(budget)} is "
        "available (set LATENTGRAPH_MEMORY_BUDGET to change the budget); use a smaller size or "
        "batch, or the tiled VAE nodes"
    )
