"""The output cache: node outputs by lineage key, kept on their device within per-device byte budgets.

Eviction is least-recently-used per device and skips pinned entries (what the running plan still
needs). An entry holding a model is moved to the CPU before it is dropped from an accelerator.
The cache outlives runs and graphs; only the budgets bound it.

Models move between devices only through the cache (`onload`, offload), and every move
re-measures every entry: a LoRA copy shares most of its weights with its base model, so moving
one moves part of the other. Usage counts each shared storage once. An entry sharing storage
with a pinned one is not offloaded, so a running node's model is never split across devices.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

from engine.placement import CPU, Budgets, Placement, TorchPlacement

log = logging.getLogger(__name__)


@dataclass
class CacheEntry:
    """One node's outputs and UI result, with the bytes they hold per device."""

    node_type: str
    outputs: dict[str, Any]
    ui: dict[str, Any] | None = None
    footprint: dict[str, int] = field(default_factory=dict)


@dataclass
class CacheStats:
    """Counters for tests, benchmarks and the server's system stats."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    offloads: int = 0


class OutputCache:
    """A thread-safe LRU of node outputs with per-device byte budgets."""

    def __init__(self, placement: Placement | None = None, budgets: Budgets | None = None) -> None:
        self.placement: Placement = placement or TorchPlacement()
        self.budgets = budgets or Budgets()
        self.stats = CacheStats()
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._pins: Counter[str] = Counter()
        self._lock = threading.RLock()

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def keys(self) -> list[str]:
        """Keys from least to most recently used."""
        with self._lock:
            return list(self._entries)

    def get(self, key: str) -> CacheEntry | None:
        """The entry for `key`, marking it most recently used and measuring it afresh."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.stats.misses += 1
                return None
            self._entries.move_to_end(key)
            self.stats.hits += 1
            entry.footprint = self.placement.footprint(entry.outputs)
            return entry

    def onload(self, key: str) -> None:
        """Move an entry's models to the compute device (before a node reads them), then
        re-measure and keep that device within its budget."""
        onload = getattr(self.placement, "onload", None)
        with self._lock:
            entry = self._entries.get(key)
            if onload is None or entry is None or not self.placement.holds_model(entry.outputs):
                return
            before = entry.footprint
            entry.outputs = onload(entry.outputs)
            if self.placement.footprint(entry.outputs) != before:
                self._remeasure()
                self._enforce(set(entry.footprint))

    def put(self, key: str, entry: CacheEntry) -> None:
        """Store an entry, then evict older unpinned entries until every device is within budget."""
        with self._lock:
            entry.footprint = self.placement.footprint(entry.outputs)
            self._entries[key] = entry
            self._entries.move_to_end(key)
            self._enforce(set(entry.footprint))

    def pin(self, key: str) -> None:
        """Protect an entry from eviction until a matching `unpin`."""
        with self._lock:
            self._pins[key] += 1

    def pin_if_present(self, key: str) -> bool:
        """Pin an entry if it is cached, atomically; returns whether it was."""
        with self._lock:
            if key not in self._entries:
                return False
            self._pins[key] += 1
            return True

    def unpin(self, key: str) -> None:
        """Release one pin; an entry with no pins left may be evicted."""
        with self._lock:
            self._pins[key] -= 1
            if self._pins[key] <= 0:
                del self._pins[key]

    def drop(self, key: str) -> None:
        """Forget one entry."""
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget every unpinned entry."""
        with self._lock:
            for key in [k for k in self._entries if k not in self._pins]:
                del self._entries[key]

    def offload_models(self) -> int:
        """Move every unpinned entry that holds a model to the CPU; returns how many moved."""
        with self._lock:
            moved = 0
            for key, entry in self._entries.items():
                on_accelerator = any(d != CPU and n > 0 for d, n in entry.footprint.items())
                if key in self._pins or not on_accelerator or self._shares_with_pinned(key):
                    continue
                if self.placement.holds_model(entry.outputs):
                    self._offload(entry)
                    moved += 1
            self._enforce({CPU})
            return moved

    def usage(self) -> dict[str, int]:
        """Bytes held per device by all entries, storage shared between entries counted once."""
        with self._lock:
            measure = getattr(self.placement, "footprint_of_all", None)
            if measure is not None:
                return {
                    d: n
                    for d, n in measure([e.outputs for e in self._entries.values()]).items()
                    if n
                }
            totals: Counter[str] = Counter()
            for entry in self._entries.values():
                totals.update(entry.footprint)
            return dict(totals)

    def _remeasure(self) -> None:
        """Measure every entry again (after a move, which may have moved shared storage too)."""
        for entry in self._entries.values():
            entry.footprint = self.placement.footprint(entry.outputs)

    def _shares_with_pinned(self, key: str) -> bool:
        keys_of = getattr(self.placement, "storage_keys", None)
        if keys_of is None:
            return False
        mine = keys_of(self._entries[key].outputs)
        return any(
            mine & keys_of(self._entries[other].outputs)
            for other in self._pins
            if other != key and other in self._entries
        )

    def _enforce(self, devices: set[str]) -> None:
        pending = sorted(devices, key=lambda d: d == CPU)  # accelerators first: they spill to CPU
        while pending:
            device = pending.pop(0)
            limit = self.budgets.limit(device)
            used = self.usage().get(device, 0)
            for key in list(self._entries):
                if used <= limit:
                    break
                entry = self._entries[key]
                held = entry.footprint.get(device, 0)
                if key in self._pins or held == 0 or self._shares_with_pinned(key):
                    continue
                if device != CPU and self.placement.holds_model(entry.outputs):
                    self._offload(entry)  # it keeps its place in the LRU order
                    if CPU not in pending:
                        pending.append(CPU)
                else:
                    del self._entries[key]
                    self.stats.evictions += 1
                    log.debug("evicted %s (%s) from %s", key[:12], entry.node_type, device)
                # Shared storage may stay behind (or have moved along): measure, do not subtract.
                used = self.usage().get(device, 0)
            if used > limit:
                log.info(
                    "%s is over its cache budget; the rest is pinned by the running plan", device
                )

    def _offload(self, entry: CacheEntry) -> None:
        entry.outputs = self.placement.offload(entry.outputs)
        self._remeasure()
        self.stats.offloads += 1
        log.debug("offloaded %s to the CPU", entry.node_type)
