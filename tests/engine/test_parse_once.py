"""Preparing a graph parses and dumps its document once, however many stages look at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from engine.compose import prepare_graph
from engine.graph import GraphFile
from engine.registry import Registry
from engine.validate import validate_graph

GRAPH = {
    "nodes": {
        "k": {"type": "Constant", "inputs": {"value": 2}},
        "sum": {"type": "Add", "inputs": {"b": 3}, "links": {"a": "k.value"}},
        "out": {"type": "ShowInt", "links": {"value": "sum.value"}},
    }
}


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """How often graph documents are parsed into, and dumped from, `GraphFile`."""
    counts = {"parse": 0, "dump": 0}
    parse, dump = GraphFile.model_validate, GraphFile.model_dump

    def counting_parse(*args: Any, **kwargs: Any) -> GraphFile:
        counts["parse"] += 1
        return parse(*args, **kwargs)

    def counting_dump(self: GraphFile, *args: Any, **kwargs: Any) -> dict[str, Any]:
        counts["dump"] += 1
        return dump(self, *args, **kwargs)

    monkeypatch.setattr(GraphFile, "model_validate", counting_parse)
    monkeypatch.setattr(GraphFile, "model_dump", counting_dump)
    yield counts


def test_a_plain_graph_is_parsed_and_dumped_once(
    registry: Registry, counted: dict[str, int]
) -> None:
    prepared = prepare_graph(GRAPH, registry)
    assert counted == {"parse": 1, "dump": 1}
    assert prepared.validated.targets == ["out"]
    assert prepared.validated.nodes["k"].literals == {"value": 2}
    assert prepared.validated.nodes["sum"].links == {"a": ("k", "value")}


def test_preparing_gives_what_validating_gives(registry: Registry) -> None:
    prepared = prepare_graph(GRAPH, registry).validated
    validated = validate_graph(GRAPH, registry)
    assert prepared.targets == validated.targets
    assert prepared.document == validated.document
    assert {n: (b.cls, b.literals, b.links, b.position) for n, b in prepared.nodes.items()} == {
        n: (b.cls, b.literals, b.links, b.position) for n, b in validated.nodes.items()
    }


def test_a_parsed_graph_is_not_parsed_again(registry: Registry, counted: dict[str, int]) -> None:
    parsed = GraphFile.model_validate(GRAPH)
    counted["parse"] = 0
    validated = validate_graph(parsed, registry)
    assert counted["parse"] == 0
    assert validated.targets == ["out"]
