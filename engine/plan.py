"""Planning a run: which nodes to compute, in what order, and each node's lineage cache key."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import networkx as nx

from engine.validate import BoundNode, ValidatedGraph


@dataclass(frozen=True)
class Plan:
    """The ancestors of the targets in a deterministic topological order, with their cache keys."""

    order: list[str]
    keys: dict[str, str]
    targets: list[str]
    consumers: dict[str, list[str]]


def plan_run(graph: ValidatedGraph, fingerprint: Callable[[BoundNode], str]) -> Plan:
    """Order the nodes the targets need and key each one; `fingerprint` is asked of volatile nodes."""
    deps = graph.dependency_graph()
    needed = set(graph.targets)
    for target in graph.targets:
        needed |= nx.ancestors(deps, target)
    # A copy when some nodes are not needed: iterating a subgraph view is slow.
    sub = deps if len(needed) == deps.number_of_nodes() else nx.DiGraph(deps.subgraph(needed))
    # Ties between independent branches break by the order nodes appear in the file.
    order = list(nx.lexicographical_topological_sort(sub, key=lambda n: graph.nodes[n].position))
    position = {n: i for i, n in enumerate(order)}
    keys: dict[str, str] = {}
    for node_id in order:
        bound = graph.nodes[node_id]
        fp = fingerprint(bound) if bound.cls.spec.volatile else None
        keys[node_id] = lineage_key(bound, keys, fp)
    consumers = {n: sorted(sub.successors(n), key=position.__getitem__) for n in order}
    return Plan(order=order, keys=keys, targets=list(graph.targets), consumers=consumers)


def lineage_key(bound: BoundNode, upstream: dict[str, str], fingerprint: str | None) -> str:
    """A Merkle key: the node's type, version and literals, and the keys of the outputs it reads.

    It never hashes tensor contents, so keying a graph costs O(edges).
    """
    spec = bound.cls.spec
    record = {
        "type": spec.type,
        "version": spec.version,
        "literals": bound.literals,
        "links": {
            name: f"{upstream[src]}.{out}" for name, (src, out) in sorted(bound.links.items())
        },
        "fingerprint": fingerprint,
    }
    return hashlib.sha256(canonical_json(record).encode()).hexdigest()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace; NaN and infinities are spelled out, not rejected."""
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value
