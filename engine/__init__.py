"""Latentgraph's engine: typed nodes, JSON graphs, validation, and a lineage-cached DAG executor.

The public names below load lazily, so that `latentgraph --help` imports neither pydantic nor torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Budgets": "engine.placement",
    "CacheEntry": "engine.cache",
    "CancelToken": "engine.context",
    "ErrorCode": "engine.errors",
    "Executor": "engine.executor",
    "GraphError": "engine.errors",
    "Graph": "engine.builder",
    "GraphBuildError": "engine.builder",
    "GraphFile": "engine.graph",
    "GraphValidationError": "engine.errors",
    "Input": "engine.node",
    "Interrupted": "engine.context",
    "Node": "engine.node",
    "NodeFailure": "engine.errors",
    "NodeInputError": "engine.errors",
    "NodeRef": "engine.builder",
    "NodeSpec": "engine.node",
    "OutputCache": "engine.cache",
    "Outputs": "engine.node",
    "Paths": "engine.config",
    "Placement": "engine.placement",
    "Port": "engine.builder",
    "Registry": "engine.registry",
    "RunContext": "engine.context",
    "RunError": "engine.run_results",
    "RunResult": "engine.executor",
    "default_registry": "engine.registry",
    "graph_json_schema": "engine.graph",
    "load_graph": "engine.graph",
    "node": "engine.node",
    "validate_graph": "engine.validate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return __all__
