"""From a graph document to what runs: expand its sweep, inline its subgraphs, validate the result."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import Paths
from engine.errors import GraphValidationError
from engine.graph import parse_graph_partially
from engine.registry import Registry
from engine.subgraph import compose
from engine.sweep import ExpandedSweep, expand_sweep
from engine.validate import ValidatedGraph, validate_graph


@dataclass(frozen=True)
class PreparedGraph:
    """A validated, runnable graph, with the sweep's combinations and subgraph output mapping."""

    validated: ValidatedGraph
    sweep: ExpandedSweep | None = None
    # (subgraph node id, declared output) → (inner node path, output).
    ports: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    def source(self, node_id: str, output: str) -> tuple[str, str]:
        """Where the value of `node_id.output` is computed in the run."""
        return self.ports.get((node_id, output), (node_id, output))


def prepare_graph(
    document: Any,
    registry: Registry,
    paths: Paths | None = None,
    base_dirs: Sequence[Path] = (),
) -> PreparedGraph:
    """Validate a graph document with its sweep and subgraphs; raises GraphValidationError.

    `base_dirs` are searched for subgraph files before the subgraphs folder (the CLI passes the
    graph file's folder). The validated graph's `document` is the graph as given.
    """
    graph, errors = parse_graph_partially(document)
    if graph is None:
        raise GraphValidationError(errors)
    if errors:
        # Validate what parsed, so that one malformed node does not hide the others' errors.
        try:
            validate_graph(graph, registry, paths)
        except GraphValidationError as exc:
            errors.extend(exc.errors)
        raise GraphValidationError(errors)
    normalized = graph.model_dump(mode="json", exclude_none=True)
    expanded = expand_sweep(normalized, registry)
    # Without a sweep the graph to run is the one parsed above: compose takes it as it is.
    runnable = expanded.document if expanded is not None else graph
    flat = compose(runnable, registry, paths, base_dirs)
    validated = ValidatedGraph(
        flat.nodes,
        flat.targets,
        normalized,
        expanded.node_documents if expanded is not None else {},
    )
    return PreparedGraph(validated, expanded, flat.ports)
