"""Sweeps: one graph over several input values, expanded into one graph that shares what does not change.

A sweep `{"sampler.seed": [1, 2, 3]}` copies the swept node and everything downstream of it once
per combination (`sampler-1`, `decode-1`, `save-1`, ...) and keeps every other node once, so the
plan loads the checkpoint and encodes the prompts a single time. Copies of nodes with a `prefix`
input (SaveImage) get the combination in their file names; each copy records, as the graph it
belongs to, the original graph with that combination's values (what PNG metadata stores).
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from engine.errors import ErrorCode, GraphError, GraphValidationError
from engine.graph import split_link
from engine.registry import Registry

SweepMode = Literal["product", "zip"]
_SAFE_LABEL = re.compile(r"^[A-Za-z0-9.+-]{1,24}$")
FILE_PREFIX_INPUT = "prefix"
# Each combination copies part of the graph into one plan; this bounds what one request can ask.
MAX_COMBINATIONS = 1024


@dataclass(frozen=True)
class Combination:
    """One point of a sweep: its values, a short label for file names, and its copies' node ids."""

    index: int
    values: dict[str, Any]
    label: str
    nodes: dict[str, str]  # original node id → the id it has in this combination
    document: dict[str, Any]  # the original graph with these values, without the sweep


@dataclass(frozen=True)
class ExpandedSweep:
    """A swept graph as one plain graph document, and where each combination lives in it."""

    document: dict[str, Any]
    combinations: list[Combination]
    node_documents: dict[str, dict[str, Any]]


def parse_values(raw: str, read_file: Any = None) -> list[Any]:
    """The values of a `--sweep` argument: "1,2,3", a JSON list "[...]", or "@file" (one per line).

    Each comma-separated item is read as JSON if it parses, else as text.
    """
    import json

    if raw.startswith("@"):
        reader = read_file or (lambda path: Path(path).read_text(encoding="utf-8"))
        return [line.strip() for line in reader(raw[1:]).splitlines() if line.strip()]
    if raw.startswith("["):
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list):
            return parsed
    values: list[Any] = []
    for item in raw.split(","):
        try:
            values.append(json.loads(item))
        except json.JSONDecodeError:
            values.append(item.strip())
    return values


def combinations(values: Mapping[str, Sequence[Any]], mode: SweepMode) -> list[dict[str, Any]]:
    """Every combination (product) or the i-th value of each input together (zip)."""
    names = list(values)
    count = (
        min(len(v) for v in values.values())
        if mode == "zip"
        else math.prod(map(len, values.values()))
    )
    if count > MAX_COMBINATIONS:
        message = f"the sweep has {count} combinations; at most {MAX_COMBINATIONS} run in one graph"
        raise GraphValidationError([GraphError(code=ErrorCode.INVALID_GRAPH, message=message)])
    if mode == "zip":
        lengths = {len(v) for v in values.values()}
        if len(lengths) > 1:
            sizes = ", ".join(f"{n}: {len(values[n])}" for n in names)
            raise GraphValidationError(
                [
                    GraphError(
                        code=ErrorCode.INVALID_GRAPH,
                        message=f"a zip sweep needs the same number of values per input ({sizes})",
                    )
                ]
            )
        rows: Iterable[tuple[Any, ...]] = zip(*(values[n] for n in names), strict=True)
    else:
        rows = itertools.product(*(values[n] for n in names))
    return [dict(zip(names, row, strict=True)) for row in rows]


def expand_sweep(document: dict[str, Any], registry: Registry) -> ExpandedSweep | None:
    """Expand the document's `sweep` into one graph; None when it has no sweep."""
    sweep = document.get("sweep")
    if not sweep:
        return None
    nodes: dict[str, Any] = document["nodes"]
    values: dict[str, list[Any]] = sweep["values"]
    errors = []
    for path in values:
        node_id, name = split_link(path)
        cls = registry.get(nodes[node_id].get("type", "")) if node_id in nodes else None
        if node_id not in nodes:
            message = f"sweep {path!r}: the graph has no node {node_id!r}"
        elif cls is not None and cls.spec.input(name) is None:
            known = ", ".join(i.name for i in cls.spec.inputs) or "none"
            message = f"sweep {path!r}: {cls.spec.type} has no input {name!r} (inputs: {known})"
        else:
            continue
        errors.append(
            GraphError(code=ErrorCode.INVALID_GRAPH, message=message, node_id=node_id, input=name)
        )
    if errors:
        raise GraphValidationError(errors)
    rows = combinations(values, sweep.get("mode", "product"))
    swept = {split_link(path)[0] for path in values}
    varying = _downstream(nodes, swept)
    base = {k: v for k, v in document.items() if k != "sweep"}
    expanded_nodes: dict[str, Any] = {
        n: copy.deepcopy(e) for n, e in nodes.items() if n not in varying
    }
    taken = set(nodes)
    result: list[Combination] = []
    node_documents: dict[str, dict[str, Any]] = {}
    for index, row in enumerate(rows):
        label = _label(values, row)
        ids = {n: n for n in nodes if n not in varying}
        for node_id in nodes:
            if node_id in varying:
                ids[node_id] = _fresh(f"{node_id}-{index + 1}", taken)
        applied = _apply(base, row)
        for node_id in nodes:
            if node_id not in varying:
                continue
            entry = copy.deepcopy(applied["nodes"][node_id])
            entry["links"] = {
                name: _relink(link, ids) for name, link in entry.get("links", {}).items()
            }
            _label_files(entry, registry, label)
            expanded_nodes[ids[node_id]] = entry
            node_documents[ids[node_id]] = applied
        result.append(Combination(index, row, label, ids, applied))
    expanded = {**base, "nodes": expanded_nodes}
    if base.get("outputs") is not None:
        outputs: list[str] = []
        for node_id in base["outputs"]:
            outputs += (
                [c.nodes.get(node_id, node_id) for c in result] if node_id in varying else [node_id]
            )
        expanded["outputs"] = list(dict.fromkeys(outputs))
    return ExpandedSweep(expanded, result, node_documents)


def _downstream(nodes: dict[str, Any], roots: set[str]) -> set[str]:
    consumers: dict[str, set[str]] = {}
    for node_id, entry in nodes.items():
        for link in entry.get("links", {}).values():
            consumers.setdefault(split_link(link)[0], set()).add(node_id)
    found, pending = set(roots), list(roots)
    while pending:
        for consumer in consumers.get(pending.pop(), ()):
            if consumer not in found:
                found.add(consumer)
                pending.append(consumer)
    return found


def _apply(document: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """The document with these values set as literals (a swept link is replaced, as `--set` does)."""
    applied = copy.deepcopy(document)
    for path, value in row.items():
        node_id, name = split_link(path)
        entry = applied["nodes"][node_id]
        entry.setdefault("inputs", {})[name] = value
        entry.get("links", {}).pop(name, None)
    return applied


def _relink(link: str, ids: dict[str, str]) -> str:
    node_id, output = split_link(link)
    return f"{ids.get(node_id, node_id)}.{output}"


def _label(values: dict[str, list[Any]], row: dict[str, Any]) -> str:
    """ "seed1_text2": each input's value when it is short and file-safe, else its 1-based index."""
    parts = []
    for path, value in row.items():
        name = split_link(path)[1]
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        if isinstance(value, (bool, int, float)) or _SAFE_LABEL.match(shown):
            parts.append(f"{name}{shown}")
        else:
            parts.append(f"{name}{values[path].index(value) + 1}")
    return "_".join(parts)


def _label_files(entry: dict[str, Any], registry: Registry, label: str) -> None:
    cls = registry.get(entry.get("type", ""))
    spec_input = cls.spec.input(FILE_PREFIX_INPUT) if cls is not None else None
    if (
        spec_input is None
        or spec_input.type != "STRING"
        or FILE_PREFIX_INPUT in entry.get("links", {})
    ):
        return
    prefix = entry.get("inputs", {}).get(FILE_PREFIX_INPUT, spec_input.default)
    if isinstance(prefix, str):
        entry.setdefault("inputs", {})[FILE_PREFIX_INPUT] = f"{prefix}_{label}"


def _fresh(wanted: str, taken: set[str]) -> str:
    candidate, number = wanted, 2
    while candidate in taken:
        candidate = f"{wanted}_{number}"
        number += 1
    taken.add(candidate)
    return candidate
