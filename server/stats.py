"""System statistics: versions, memory, compute devices and the output cache.

torch is imported only here, only when it is installed, and only on a worker thread.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sys
from types import ModuleType

import psutil

from engine.cache import OutputCache
from server.schemas import CacheInfo, DeviceInfo, SystemStats

_PACKAGES = ("latentgraph", "aiohttp", "pydantic", "pillow", "torch", "diffusers")


def collect_stats(cache: OutputCache, queue: dict[str, int]) -> SystemStats:
    """Everything GET /api/v1/system reports; blocking, so call it off the event loop."""
    torch = _torch()
    memory = psutil.virtual_memory()
    return SystemStats(
        versions={"python": platform.python_version(), **{p: _version(p) for p in _PACKAGES}},
        system={
            "os": platform.platform(),
            "cpu_count": os.cpu_count(),
            "ram_total": memory.total,
            "ram_available": memory.available,
            "pid": os.getpid(),
        },
        devices=_devices(torch),
        cache=CacheInfo(
            entries=len(cache),
            usage=cache.usage(),
            budgets=cache.budgets.as_dict(),
            hits=cache.stats.hits,
            misses=cache.stats.misses,
            evictions=cache.stats.evictions,
            offloads=cache.stats.offloads,
        ),
        queue=queue,
    )


def release_accelerator_memory() -> None:
    """Return torch's cached but unused accelerator memory to the driver, if torch is loaded."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _torch() -> ModuleType | None:
    if "torch" in sys.modules:
        return sys.modules["torch"]
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return torch


def _devices(torch: ModuleType | None) -> list[DeviceInfo]:
    memory = psutil.virtual_memory()
    devices = [
        DeviceInfo(
            name=platform.processor() or platform.machine(),
            type="cpu",
            memory_total=memory.total,
            memory_free=memory.available,
        )
    ]
    if torch is None:
        return devices
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            devices.append(
                DeviceInfo(
                    name=torch.cuda.get_device_name(index),
                    type="cuda",
                    index=index,
                    memory_total=total,
                    memory_free=free,
                )
            )
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append(DeviceInfo(name="Apple GPU", type="mps", index=0))
    return devices


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
