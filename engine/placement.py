"""The device boundary: how many bytes a value holds on which device, and how to move it to the CPU.

The cache only talks to this protocol, so its tests run with a fake placement and fake budgets,
without a GPU and without torch.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any, Protocol

import psutil

CPU = "cpu"


class Placement(Protocol):
    """Measures and moves node output values."""

    def footprint(self, value: Any) -> dict[str, int]:
        """Bytes the value holds, by device name ("cpu", "cuda:0", "mps")."""
        ...

    def holds_model(self, value: Any) -> bool:
        """Whether the value contains a model, which is moved to the CPU before it is dropped."""
        ...

    def offload(self, value: Any) -> Any:
        """The value with everything moved to CPU memory."""
        ...


class Onloading(Protocol):
    """Optional part of a Placement: moving models to the compute device, and shared storage.

    The cache uses these when its placement has them; fake placements in tests may omit them.
    """

    def onload(self, value: Any) -> Any:
        """The value with its models on the compute device (moved in place)."""
        ...

    def footprint_of_all(self, values: list[Any]) -> dict[str, int]:
        """Bytes per device of several values together, shared storage counted once."""
        ...

    def storage_keys(self, value: Any) -> set[int]:
        """Identities of the storages a value holds, to tell which values share memory."""
        ...


class Budgets:
    """Byte budgets per device; unset devices get a default taken from their free memory."""

    def __init__(
        self,
        limits: dict[str, int] | None = None,
        default: Callable[[str], int] | None = None,
    ) -> None:
        self._limits = dict(limits or {})
        self._default = default or default_budget

    def limit(self, device: str) -> int:
        """The budget for `device`, computing and remembering its default on first use."""
        if device not in self._limits:
            self._limits[device] = self._default(device)
        return self._limits[device]

    def set(self, device: str, limit: int) -> None:
        """Change one device's budget."""
        self._limits[device] = limit

    def as_dict(self) -> dict[str, int]:
        """The budgets decided so far."""
        return dict(self._limits)


def default_budget(device: str) -> int:
    """Half of the available RAM for the CPU; 80% of the free memory of an accelerator."""
    if device == CPU:
        return int(available_ram() * 0.5)
    torch = sys.modules.get("torch")
    if torch is not None and device.startswith("cuda") and torch.cuda.is_available():
        index = int(device.split(":")[1]) if ":" in device else 0
        free, _total = torch.cuda.mem_get_info(index)
        return int(free * 0.8)
    if torch is not None and device == "mps":
        return int(available_ram() * 0.4)  # MPS shares the system's unified memory
    return int(available_ram() * 0.5)


def available_ram() -> int:
    """Bytes of RAM that can be used now without swapping (the kernel's estimate)."""
    return int(psutil.virtual_memory().available)


class TorchPlacement:
    """Placement for real values: tensors and torch modules inside dataclasses, lists and dicts.

    `compute_device` fixes where models run; by default it is the best device found (CUDA, MPS,
    then the CPU). Tests pass a second device the CPU can host, so real moves run without a GPU.
    """

    def __init__(self, compute_device: str | None = None) -> None:
        self._compute_device = compute_device

    def footprint(self, value: Any) -> dict[str, int]:
        """Bytes per device, counting each tensor storage once."""
        totals: dict[str, int] = {}
        seen: set[tuple[str, int]] = set()
        for tensor in _tensors(value):
            storage = tensor.untyped_storage()
            device = str(tensor.device)
            key = (device, _storage_key(storage))
            if key in seen:
                continue
            seen.add(key)
            totals[device] = totals.get(device, 0) + storage.nbytes()
        return totals

    def footprint_of_all(self, values: list[Any]) -> dict[str, int]:
        """Bytes per device of all values together: a LoRA copy's shared weights count once."""
        return self.footprint(list(values))

    def storage_keys(self, value: Any) -> set[int]:
        """Identities (data pointers, where the device has them) of the non-empty storages held."""
        storages = (t.untyped_storage() for t in _tensors(value))
        return {_storage_key(s) for s in storages if s.nbytes()}

    def compute_device(self) -> str:
        """Where models run: the device given, else CUDA, then MPS, then the CPU."""
        if self._compute_device is not None:
            return self._compute_device
        torch = sys.modules.get("torch")
        if torch is None:
            return CPU
        if torch.cuda.is_available():
            return f"cuda:{torch.cuda.current_device()}"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return CPU

    def onload(self, value: Any) -> Any:
        """Every module in the value moved, whole, to the compute device (in place)."""
        torch = sys.modules.get("torch")
        if torch is None:
            return value
        device = torch.device(self.compute_device())
        for item in _walk(value):
            if isinstance(item, torch.nn.Module) and any(
                t.device != device for t in _module_tensors(item)
            ):
                item.to(device)
        return value

    def holds_model(self, value: Any) -> bool:
        """Whether a torch.nn.Module is anywhere inside the value."""
        torch = sys.modules.get("torch")
        return torch is not None and any(isinstance(v, torch.nn.Module) for v in _walk(value))

    def offload(self, value: Any) -> Any:
        """Modules move in place; tensors are copied to the CPU."""
        return _to_cpu(value)


def _walk(value: Any) -> Any:
    """Every object reachable through dataclass fields, sequences and dict values."""
    stack, seen = [value], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item))
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())


def _storage_key(storage: Any) -> int:
    """What identifies a storage: its data pointer, or (for devices without one) the storage itself."""
    try:
        pointer = int(storage.data_ptr())
    except RuntimeError:  # lazy and XLA storages have no pointer the host can read
        return int(storage._cdata)
    # An empty storage has no pointer; its id is unique while it lives, and it counts 0 bytes.
    return pointer or id(storage)


def _tensors(value: Any) -> Any:
    torch = sys.modules.get("torch")
    if torch is None:  # no tensor can exist if torch was never imported
        return
    for item in _walk(value):
        if isinstance(item, torch.Tensor):
            yield item
        elif isinstance(item, torch.nn.Module):
            yield from item.parameters()
            yield from item.buffers()


def _module_tensors(module: Any) -> Any:
    yield from module.parameters()
    yield from module.buffers()


def _to_cpu(value: Any) -> Any:
    torch = sys.modules.get("torch")
    if torch is None:
        return value
    if isinstance(value, torch.nn.Module):
        return value.to(CPU)
    if isinstance(value, torch.Tensor):
        return value.to(CPU)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: _to_cpu(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init
        }
        return dataclasses.replace(value, **changes)
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    return value
