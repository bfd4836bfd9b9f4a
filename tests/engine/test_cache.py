"""Eviction order, pinning and offload-before-drop, with a fake device budget on the CPU."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import psutil

from engine.cache import CacheEntry, OutputCache
from engine.placement import Budgets

MB = 1 << 20


@dataclass(frozen=True)
class FakeValue:
    """Stands in for a tensor or a model: `size` bytes on `device`."""

    size: int
    device: str = "cuda:0"
    model: bool = False


class FakePlacement:
    """The Placement seam, reading sizes and devices off FakeValues."""

    def footprint(self, value: Any) -> dict[str, int]:
        totals: dict[str, int] = {}
        for item in value.values():
            totals[item.device] = totals.get(item.device, 0) + item.size
        return totals

    def holds_model(self, value: Any) -> bool:
        return any(item.model for item in value.values())

    def offload(self, value: Any) -> Any:
        return {k: replace(v, device="cpu") for k, v in value.items()}


def make_cache(gpu: int, cpu: int) -> OutputCache:
    return OutputCache(FakePlacement(), Budgets({"cuda:0": gpu, "cpu": cpu}))


def put(cache: OutputCache, key: str, value: FakeValue) -> None:
    cache.put(key, CacheEntry(node_type=key, outputs={"out": value}))


def test_least_recently_used_is_evicted_first() -> None:
    cache = make_cache(gpu=30 * MB, cpu=100 * MB)
    for key in ("a", "b", "c"):
        put(cache, key, FakeValue(10 * MB))
    cache.get("a")  # now b is the least recently used
    put(cache, "d", FakeValue(10 * MB))
    assert cache.keys() == ["c", "a", "d"]
    assert cache.stats.evictions == 1
    assert cache.usage() == {"cuda:0": 30 * MB}


def test_pinned_entries_are_never_evicted() -> None:
    cache = make_cache(gpu=20 * MB, cpu=100 * MB)
    put(cache, "a", FakeValue(10 * MB))
    put(cache, "b", FakeValue(10 * MB))
    cache.pin("a")
    put(cache, "c", FakeValue(10 * MB))
    assert "a" in cache and "b" not in cache and "c" in cache
    cache.unpin("a")
    put(cache, "d", FakeValue(10 * MB))
    assert "a" not in cache


def test_over_budget_when_everything_is_pinned_keeps_everything() -> None:
    cache = make_cache(gpu=10 * MB, cpu=100 * MB)
    cache.pin("a")
    cache.pin("b")
    put(cache, "a", FakeValue(10 * MB))
    put(cache, "b", FakeValue(10 * MB))
    assert cache.keys() == ["a", "b"]


def test_models_move_to_the_cpu_before_they_are_dropped() -> None:
    cache = make_cache(gpu=20 * MB, cpu=100 * MB)
    put(cache, "unet", FakeValue(15 * MB, model=True))
    put(cache, "latent", FakeValue(1 * MB))
    put(cache, "vae", FakeValue(15 * MB, model=True))
    entry = cache.get("unet")
    assert entry is not None
    assert entry.outputs["out"].device == "cpu"
    assert entry.footprint == {"cpu": 15 * MB}
    assert cache.stats.offloads == 1 and cache.stats.evictions == 0
    assert cache.usage() == {"cuda:0": 16 * MB, "cpu": 15 * MB}


def test_offloaded_models_are_dropped_when_the_cpu_is_full_too() -> None:
    cache = make_cache(gpu=20 * MB, cpu=20 * MB)
    put(cache, "m1", FakeValue(15 * MB, model=True))
    put(cache, "m2", FakeValue(15 * MB, model=True))  # m1 → cpu
    put(cache, "m3", FakeValue(15 * MB, model=True))  # m2 → cpu, which pushes m1 out
    assert cache.keys() == ["m2", "m3"]
    assert cache.get("m2").outputs["out"].device == "cpu"  # type: ignore[union-attr]
    assert cache.stats.offloads == 2 and cache.stats.evictions == 1


def test_plain_tensors_are_dropped_not_offloaded() -> None:
    cache = make_cache(gpu=10 * MB, cpu=100 * MB)
    put(cache, "a", FakeValue(10 * MB))
    put(cache, "b", FakeValue(10 * MB))
    assert cache.keys() == ["b"]
    assert cache.stats.offloads == 0


def test_devices_have_separate_budgets() -> None:
    cache = make_cache(gpu=10 * MB, cpu=10 * MB)
    put(cache, "g", FakeValue(10 * MB, device="cuda:0"))
    put(cache, "c", FakeValue(10 * MB, device="cpu"))
    assert cache.keys() == ["g", "c"]


def test_offload_models_on_request() -> None:
    cache = make_cache(gpu=100 * MB, cpu=100 * MB)
    put(cache, "unet", FakeValue(15 * MB, model=True))
    put(cache, "latent", FakeValue(1 * MB))
    assert cache.offload_models() == 1
    assert cache.usage() == {"cpu": 15 * MB, "cuda:0": 1 * MB}


def test_default_budget_comes_from_free_memory() -> None:
    budgets = Budgets()
    assert budgets.limit("cpu") > 0
    # Half of the RAM available now, measured independently (it moves a little meanwhile).
    half_available = psutil.virtual_memory().available / 2
    assert 0.8 * half_available < budgets.limit("cpu") < 1.2 * half_available
    assert budgets.as_dict() == {"cpu": budgets.limit("cpu")}  # decided once, then kept


def test_a_budget_set_or_given_wins_over_the_default() -> None:
    asked: list[str] = []
    budgets = Budgets({"cuda:0": 5 * MB}, default=lambda device: asked.append(device) or 7 * MB)
    assert budgets.limit("cuda:0") == 5 * MB and asked == []
    assert budgets.limit("cpu") == budgets.limit("cpu") == 7 * MB and asked == ["cpu"]
    budgets.set("cpu", 9 * MB)
    assert budgets.limit("cpu") == 9 * MB


class TenMegabytesEach:
    """Every node output weighs 10 MB on the CPU, so a 15 MB budget holds one entry."""

    def footprint(self, value: Any) -> dict[str, int]:
        return {"cpu": 10 * MB} if value else {}

    def holds_model(self, value: Any) -> bool:
        return False

    def offload(self, value: Any) -> Any:
        return value


def test_executor_keeps_what_the_plan_needs_under_a_tiny_budget(registry, paths) -> None:
    from engine.executor import Executor
    from tests.engine.conftest import chain_graph

    cache = OutputCache(TenMegabytesEach(), Budgets({"cpu": 15 * MB}))
    executor = Executor(registry, cache=cache, paths=paths)
    result = executor.run(chain_graph())
    assert result.status == "finished"
    assert result.ui["show"] == {"text": ["7.50"]}
    assert cache.stats.evictions > 0
    # A second run re-executes what was evicted and still gets the right answer.
    assert executor.run(chain_graph()).ui["show"] == {"text": ["7.50"]}
