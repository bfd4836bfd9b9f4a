"""TorchPlacement and the cache with real tensors and modules; CPU-hosted devices stand in for a GPU.

The cache's own tests use a fake placement; these run the real one: byte counts from storages,
shared weights counted once, offloading that keeps modules and rebuilds dataclasses, onloading
to the compute device, and eviction by measured bytes.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from engine.cache import CacheEntry, OutputCache
from engine.placement import Budgets, TorchPlacement


@dataclasses.dataclass(frozen=True)
class Holder:
    """A node output shaped like ours: a module, a tensor and a list of tensors in a dataclass."""

    module: torch.nn.Module
    tensor: torch.Tensor
    extras: list[torch.Tensor]


def linear(features: int = 64) -> torch.nn.Linear:
    return torch.nn.Linear(features, features)  # (64*64 + 64) float32 = 16,640 bytes


LINEAR_BYTES = (64 * 64 + 64) * 4


def test_footprint_counts_each_storage_once_on_its_device() -> None:
    placement = TorchPlacement()
    tensor = torch.zeros(1000)
    value = Holder(linear(), tensor, [tensor[:10], tensor.view(10, 100), torch.ones(5)])
    assert placement.footprint(value) == {"cpu": LINEAR_BYTES + 4000 + 20}
    assert placement.holds_model(value) and not placement.holds_model({"t": tensor})


def test_a_copy_sharing_weights_is_counted_once_across_values() -> None:
    placement = TorchPlacement()
    base = linear()
    patched = linear()
    patched.bias = base.bias  # a LoRA copy shares every tensor it does not patch
    alone = placement.footprint(Holder(patched, torch.zeros(0), []))
    together = placement.footprint_of_all([Holder(base, torch.zeros(0), []), {"m": patched}])
    assert alone == {"cpu": LINEAR_BYTES}
    assert together == {"cpu": 2 * LINEAR_BYTES - 64 * 4}
    assert placement.storage_keys(base) & placement.storage_keys(patched) == {
        base.bias.untyped_storage().data_ptr()
    }


def test_offload_moves_modules_in_place_and_rebuilds_what_holds_tensors() -> None:
    placement = TorchPlacement()
    module, tensor = linear(), torch.arange(6.0)
    value = {"h": Holder(module, tensor, [tensor]), "n": 3}
    offloaded = placement.offload(value)
    assert offloaded["n"] == 3 and offloaded["h"] is not value["h"]
    assert offloaded["h"].module is module  # modules move in place: holders keep their object
    assert all(t.device.type == "cpu" for t in offloaded["h"].module.parameters())
    assert torch.equal(offloaded["h"].tensor, tensor) and torch.equal(
        offloaded["h"].extras[0], tensor
    )


def test_onload_moves_a_module_whole_to_the_compute_device(monkeypatch: pytest.MonkeyPatch) -> None:
    placement = TorchPlacement()
    compute = placement.compute_device()
    moved: list[torch.device] = []
    module = linear()
    original = module.to

    def recording_to(*args: object, **kwargs: object) -> torch.nn.Module:
        moved.append(torch.device(args[0]))  # type: ignore[arg-type]
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "to", recording_to)
    with torch.device("meta"):  # a module elsewhere than the compute device (no data needed)
        elsewhere = linear()
    monkeypatch.setattr(elsewhere, "to", lambda device: moved.append(torch.device(device)))
    placement.onload(Holder(module, torch.zeros(1), []))  # already there: nothing moves
    assert moved == []
    placement.onload({"a": Holder(elsewhere, torch.zeros(1), [])})
    assert moved == [torch.device(compute)]


def test_the_cache_evicts_by_measured_bytes_and_keeps_shared_weights_of_pinned_entries() -> None:
    budget = 3 * LINEAR_BYTES  # the CPU plays the device whose budget is enforced
    cache = OutputCache(TorchPlacement(), Budgets({"cpu": budget}))
    base = linear()
    cache.put("base", CacheEntry(node_type="Load", outputs={"model": base}))
    cache.pin("base")
    copy = linear()
    copy.weight = base.weight  # shares the big tensor with the pinned base
    cache.put("copy", CacheEntry(node_type="Lora", outputs={"model": copy}))
    assert cache.usage() == {"cpu": LINEAR_BYTES + 64 * 4}
    cache.put("a", CacheEntry(node_type="A", outputs={"x": torch.zeros(LINEAR_BYTES // 4)}))
    cache.put("b", CacheEntry(node_type="B", outputs={"x": torch.zeros(LINEAR_BYTES // 4)}))
    # base + copy's own bias + a + b is over budget: the oldest unpinned entries go first.
    # "copy" is older than "a" but shares the pinned base's weight, so "a" goes.
    assert cache.keys() == ["base", "copy", "b"]
    assert cache.usage() == {"cpu": 2 * LINEAR_BYTES + 64 * 4} and cache.stats.evictions == 1


# --- Real moves between two devices: torch's lazy device, which the CPU hosts, plays the GPU. ---

STAND_IN = "lazy:0"
GIB = 1 << 30


@pytest.fixture(scope="module")
def stand_in_device() -> str:
    """torch's lazy (TorchScript) device: a second device type on a CPU-only build."""
    import torch._lazy.ts_backend

    torch._lazy.ts_backend.init()
    return STAND_IN


def devices_of(*modules: torch.nn.Module) -> set[str]:
    return {str(t.device) for m in modules for t in [*m.parameters(), *m.buffers()]}


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's weights copied to the CPU, to compare after a round trip."""
    return {k: v.detach().to("cpu").clone() for k, v in module.state_dict().items()}


def assert_same_weights(module: torch.nn.Module, reference: dict[str, torch.Tensor]) -> None:
    state = cpu_state(module)
    assert state.keys() == reference.keys()
    for name, tensor in reference.items():
        assert torch.equal(state[name], tensor), name


def test_models_really_move_to_the_device_and_back_through_the_cache(stand_in_device: str) -> None:
    base = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4))
    lora = torch.nn.Sequential(torch.nn.Linear(8, 16), base[1])  # shares base's second layer
    references = cpu_state(base), cpu_state(lora)
    placement = TorchPlacement(compute_device=stand_in_device)
    cache = OutputCache(placement, Budgets({stand_in_device: GIB, "cpu": GIB}))
    cache.put("base", CacheEntry("LoadCheckpoint", {"model": Holder(base, torch.zeros(1), [])}))
    cache.put("lora", CacheEntry("LoadLora", {"model": Holder(lora, torch.zeros(1), [])}))
    assert devices_of(base, lora) == {"cpu"}

    cache.onload("lora")
    assert devices_of(lora) == {stand_in_device}  # the whole copy, shared layer included
    assert devices_of(base[0]) == {"cpu"} and devices_of(base[1]) == {stand_in_device}
    shared = (16 * 4 + 4) * 4
    assert cache.usage() == {
        stand_in_device: (8 * 16 + 16) * 4 + shared,
        "cpu": (8 * 16 + 16) * 4 + 2 * 4,  # base's own first layer, and both zeros(1)
    }
    x = torch.randn(2, 8)
    expected = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4))
    expected.load_state_dict(references[1])
    assert torch.allclose(lora(x.to(stand_in_device)).cpu(), expected(x), atol=1e-6)

    cache.pin("lora")  # a node is about to run the copy
    assert cache.offload_models() == 0  # base shares its weights: offloading it would split lora
    cache.unpin("lora")
    assert cache.offload_models() == 2 and cache.stats.offloads == 2  # base, then the copy
    assert devices_of(base, lora) == {"cpu"}
    assert cache.usage() == {"cpu": 2 * (8 * 16 + 16) * 4 + shared + 2 * 4}
    assert_same_weights(base, references[0])
    assert_same_weights(lora, references[1])


def test_a_full_device_offloads_the_least_recently_used_model(stand_in_device: str) -> None:
    first, second = linear(), linear()
    references = cpu_state(first), cpu_state(second)
    placement = TorchPlacement(compute_device=stand_in_device)
    budget = Budgets({stand_in_device: LINEAR_BYTES + LINEAR_BYTES // 2, "cpu": GIB})
    cache = OutputCache(placement, budget)
    cache.put("first", CacheEntry("Load", {"model": first}))
    cache.put("second", CacheEntry("Load", {"model": second}))
    cache.onload("first")
    assert devices_of(first) == {stand_in_device} and cache.stats.offloads == 0
    cache.onload("second")  # both do not fit: the older one goes back to the CPU, whole
    assert devices_of(second) == {stand_in_device} and devices_of(first) == {"cpu"}
    assert cache.stats.offloads == 1 and cache.keys() == ["first", "second"]
    assert cache.usage() == {stand_in_device: LINEAR_BYTES, "cpu": LINEAR_BYTES}
    assert_same_weights(first, references[0])
    assert_same_weights(second, references[1])
