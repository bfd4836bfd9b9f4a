"""The cache's byte counts with real tensors: shared storage once, moves re-measured, no races."""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from engine.cache import CacheEntry, OutputCache
from engine.executor import Executor
from engine.placement import Budgets, TorchPlacement
from engine.registry import Registry
from tests.engine.conftest import chain_graph

GIB = 1 << 30


@dataclass(frozen=True)
class Model:
    """Stands in for UNetModel: a dataclass holding a module."""

    module: Any


def base_and_lora_copy() -> tuple[torch.nn.Module, torch.nn.Module]:
    """A base model and a copy sharing every tensor except a patched first layer (as LoadLora)."""
    base = torch.nn.Sequential(torch.nn.Conv2d(4, 16, 3), torch.nn.Linear(16, 16))
    memo = {id(t): t for t in itertools.chain(base.parameters(), base.buffers())}
    lora = copy.deepcopy(base, memo)
    with torch.no_grad():
        lora[0].weight = torch.nn.Parameter(lora[0].weight + 1.0, requires_grad=False)
    return base, lora


def resident(*modules: torch.nn.Module) -> dict[str, int]:
    """Bytes actually held per device by the modules' distinct storages, counted independently."""
    seen: dict[tuple[str, int], int] = {}
    for module in modules:
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            storage = tensor.untyped_storage()
            seen[(str(tensor.device), storage.data_ptr())] = storage.nbytes()
    totals: dict[str, int] = {}
    for (device, _), size in seen.items():
        totals[device] = totals.get(device, 0) + size
    return totals


def make_cache() -> OutputCache:
    return OutputCache(TorchPlacement(), Budgets(default=lambda _device: 8 * GIB))


def test_storage_shared_by_a_lora_copy_is_counted_once() -> None:
    base, lora = base_and_lora_copy()
    cache = make_cache()
    cache.put("base", CacheEntry("LoadCheckpoint", {"model": Model(base)}))
    cache.put("lora", CacheEntry("LoadLora", {"model": Model(lora)}))
    assert cache.usage() == resident(base, lora)
    assert cache.usage()["cpu"] < sum(resident(m)["cpu"] for m in (base, lora))


def test_a_model_changed_outside_the_cache_is_measured_again_on_a_hit() -> None:
    base, _ = base_and_lora_copy()
    cache = make_cache()
    cache.put("base", CacheEntry("LoadCheckpoint", {"model": Model(base)}))
    base.half()  # a node converting it in place
    assert cache.get("base") is not None
    assert cache.usage() == resident(base)


class ClearingCache(OutputCache):
    """A cache that a concurrent POST /free empties right after any membership check."""

    def __contains__(self, key: object) -> bool:
        found = super().__contains__(key)
        self.clear()
        return found


def test_a_concurrent_clear_cannot_drop_what_the_run_already_counted_on(
    registry: Registry, paths: Any
) -> None:
    executor = Executor(registry, cache=ClearingCache(), paths=paths)
    assert executor.run(chain_graph()).status == "finished"
    result = executor.run(chain_graph(value=3))  # a, b, c cached; sum and on re-run
    assert result.status == "finished", result.error
    assert "b" in result.cached


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_offloading_a_base_model_never_splits_its_lora_copy_on_a_gpu() -> None:
    base, lora = base_and_lora_copy()
    cache = make_cache()
    cache.put("base", CacheEntry("LoadCheckpoint", {"model": Model(base)}))
    cache.put("lora", CacheEntry("LoadLora", {"model": Model(lora)}))
    cache.onload("lora")
    assert {t.device.type for t in lora.parameters()} == {"cuda"}
    assert cache.usage() == resident(base, lora)
    cache.pin("lora")  # a node is about to sample with the copy
    assert cache.offload_models() == 0  # the base shares the copy's weights: left in place
    cache.unpin("lora")
    cache.offload_models()
    assert cache.usage() == resident(base, lora)  # the copy's own conv_in stayed behind
    cache.onload("lora")
    x = torch.zeros(1, 4, 8, 8, device="cuda")
    lora[0](x)  # whole again on the GPU: no device mismatch
    assert cache.usage() == resident(base, lora)
