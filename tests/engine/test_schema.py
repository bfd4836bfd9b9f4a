"""The published graph schema, the node catalog and the pinned public API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import engine
from engine.context import RunContext
from engine.graph import graph_json_schema
from engine.node import Input, Node, Outputs, node
from engine.registry import Registry

ROOT = Path(__file__).resolve().parents[2]


def test_published_graph_schema_is_current() -> None:
    published = json.loads((ROOT / "docs" / "graph.schema.json").read_text())
    assert published == graph_json_schema(), "run: latentgraph schema > docs/graph.schema.json"


def test_example_graphs_match_the_schema_shape() -> None:
    from engine.graph import parse_graph

    for path in sorted((ROOT / "graphs").glob("*.json")):
        parse_graph(json.loads(path.read_text()))


def test_catalog_lists_types_inputs_and_outputs(registry: Registry) -> None:
    catalog = registry.catalog()
    json.dumps(catalog)  # JSON-ready
    scale = catalog["nodes"]["Scale"]
    assert scale["category"] == "test/math"
    factor = next(i for i in scale["inputs"] if i["name"] == "factor")
    assert factor == {
        **factor,
        "type": "FLOAT",
        "default": 1.0,
        "ge": 0.0,
        "le": 10.0,
        "link_only": False,
    }
    x = next(i for i in scale["inputs"] if i["name"] == "x")
    assert x["link_only"] and x["required"]
    assert scale["outputs"] == [{"name": "value", "type": "FLOAT", "display_name": "Value"}]
    style = next(i for i in catalog["nodes"]["Format"]["inputs"] if i["name"] == "style")
    assert style["choices"] == ["plain", "fixed"]
    assert catalog["nodes"]["Show"]["output_node"] is True
    assert catalog["nodes"]["ReadFile"]["volatile"] is True
    assert {"MODEL", "LATENT", "IMAGE", "INT"} <= set(catalog["types"])


def test_public_api_is_pinned() -> None:
    assert engine.__all__ == [
        "Budgets",
        "CacheEntry",
        "CancelToken",
        "ErrorCode",
        "Executor",
        "Graph",
        "GraphBuildError",
        "GraphError",
        "GraphFile",
        "GraphValidationError",
        "Input",
        "Interrupted",
        "Node",
        "NodeFailure",
        "NodeInputError",
        "NodeRef",
        "NodeSpec",
        "OutputCache",
        "Outputs",
        "Paths",
        "Placement",
        "Port",
        "Registry",
        "RunContext",
        "RunError",
        "RunResult",
        "default_registry",
        "graph_json_schema",
        "load_graph",
        "node",
        "validate_graph",
    ]
    for name in engine.__all__:
        assert getattr(engine, name) is not None


def test_a_node_class_cannot_be_registered_twice_under_one_type(registry: Registry) -> None:
    @node("Constant", category="dup")
    class Impostor(Node):
        """Same type name as a test node."""

        def run(self, ctx: RunContext) -> Outputs:
            return Outputs()

    with pytest.raises(ValueError, match="declared twice"):
        registry.add(Impostor)


def test_declaration_mistakes_are_caught_at_import() -> None:
    with pytest.raises(ValueError, match=r"MAJOR\.MINOR\.PATCH"):
        node("X", category="c", version="1")
    with pytest.raises(TypeError, match="must be annotated"):

        @node("NoReturn", category="c")
        class NoReturn(Node):
            def run(self, ctx):  # type: ignore[no-untyped-def]
                return Outputs()

    with pytest.raises(Exception, match="less than or equal"):

        @node("BadDefault", category="c")
        class BadDefault(Node):
            n: int = Input(50, le=10)

            def run(self, ctx: RunContext) -> Outputs:
                return Outputs()
