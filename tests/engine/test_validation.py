"""Validation reports every error with its code, node and input, and never coerces a value."""

from __future__ import annotations

from typing import Any

import pytest

from engine.errors import ErrorCode, GraphError, GraphValidationError
from engine.registry import Registry
from engine.validate import validate_graph


def errors_of(document: Any, registry: Registry) -> list[GraphError]:
    with pytest.raises(GraphValidationError) as caught:
        validate_graph(document, registry)
    return caught.value.errors


def one(document: Any, registry: Registry) -> GraphError:
    errors = errors_of(document, registry)
    assert len(errors) == 1, [e.render() for e in errors]
    return errors[0]


def graph(**nodes: dict) -> dict:
    return {
        "nodes": {
            **nodes,
            "out": nodes.pop("out", {"type": "ShowInt", "links": {"value": "k.value"}}),
        }
    }


K = {"type": "Constant", "inputs": {"value": 1}}


def test_a_valid_graph_passes(registry: Registry) -> None:
    validated = validate_graph(graph(k=K), registry)
    assert validated.targets == ["out"]
    assert validated.nodes["k"].literals == {"value": 1}


def test_unknown_node_type(registry: Registry) -> None:
    e = one(graph(k=K, x={"type": "Teleport"}), registry)
    assert (e.code, e.node_id, e.value) == (ErrorCode.UNKNOWN_NODE_TYPE, "x", "Teleport")


def test_missing_required_input(registry: Registry) -> None:
    e = one(graph(k=K, out={"type": "ShowInt"}), registry)
    assert (e.code, e.node_id, e.input) == (ErrorCode.MISSING_INPUT, "out", "value")


def test_unknown_input(registry: Registry) -> None:
    e = one(graph(k={"type": "Constant", "inputs": {"value": 1, "colour": "red"}}), registry)
    assert (e.code, e.node_id, e.input, e.value) == (ErrorCode.UNKNOWN_INPUT, "k", "colour", "red")


def test_link_to_missing_node(registry: Registry) -> None:
    e = one(graph(k=K, out={"type": "ShowInt", "links": {"value": "ghost.value"}}), registry)
    assert (e.code, e.node_id, e.input, e.value) == (
        ErrorCode.LINK_TO_MISSING_NODE,
        "out",
        "value",
        "ghost.value",
    )


def test_link_to_missing_output(registry: Registry) -> None:
    e = one(graph(k=K, out={"type": "ShowInt", "links": {"value": "k.result"}}), registry)
    assert (e.code, e.node_id, e.input) == (ErrorCode.LINK_TO_MISSING_OUTPUT, "out", "value")
    assert "outputs: value" in e.message


def test_malformed_link(registry: Registry) -> None:
    e = one(graph(k=K, out={"type": "ShowInt", "links": {"value": "k"}}), registry)
    assert (e.code, e.node_id, e.input) == (ErrorCode.INVALID_LINK, "out", "value")


def test_type_mismatch_on_a_link(registry: Registry) -> None:
    bad = {"type": "Show", "links": {"text": "k.value"}}
    e = one(graph(k=K, out=bad), registry)
    assert (e.code, e.node_id, e.input) == (ErrorCode.TYPE_MISMATCH, "out", "text")
    assert "STRING" in e.message and "INT" in e.message


def test_int_output_may_feed_a_float_input(registry: Registry) -> None:
    validate_graph(
        {
            "nodes": {
                "k": K,
                "s": {"type": "Scale", "links": {"x": "k.value"}},
                "f": {"type": "Format", "links": {"value": "s.value"}},
                "out": {"type": "Show", "links": {"text": "f.text"}},
            }
        },
        registry,
    )


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (5000, ErrorCode.VALUE_OUT_OF_RANGE),
        (-1001, ErrorCode.VALUE_OUT_OF_RANGE),
        (5.9, ErrorCode.INVALID_TYPE),  # never truncated to 5
        ("5", ErrorCode.INVALID_TYPE),  # never parsed
        (True, ErrorCode.INVALID_TYPE),  # a bool is not an int here
        (None, ErrorCode.INVALID_TYPE),
    ],
)
def test_literal_values_are_checked_without_coercion(
    registry: Registry, value: Any, code: ErrorCode
) -> None:
    e = one(graph(k={"type": "Constant", "inputs": {"value": value}}), registry)
    assert (e.code, e.node_id, e.input, e.value) == (code, "k", "value", value)


def test_false_as_a_string_is_not_true(registry: Registry) -> None:
    nodes = {
        "k": K,
        "s": {"type": "Scale", "links": {"x": "k.value"}},
        "f": {"type": "Format", "inputs": {"loud": "false"}, "links": {"value": "s.value"}},
        "out": {"type": "Show", "links": {"text": "f.text"}},
    }
    e = one({"nodes": nodes}, registry)
    assert (e.code, e.node_id, e.input, e.value) == (ErrorCode.INVALID_TYPE, "f", "loud", "false")


def test_value_not_among_the_choices(registry: Registry) -> None:
    nodes = {
        "k": K,
        "s": {"type": "Scale", "links": {"x": "k.value"}},
        "f": {"type": "Format", "inputs": {"style": "wavy"}, "links": {"value": "s.value"}},
        "out": {"type": "Show", "links": {"text": "f.text"}},
    }
    e = one({"nodes": nodes}, registry)
    assert (e.code, e.node_id, e.input, e.value) == (
        ErrorCode.VALUE_NOT_IN_CHOICES,
        "f",
        "style",
        "wavy",
    )
    assert "plain" in e.message


def test_literal_for_a_link_only_input(registry: Registry) -> None:
    e = one(graph(k=K, out={"type": "ShowInt", "inputs": {"value": 3}}), registry)
    assert (e.code, e.node_id, e.input) == (ErrorCode.LINK_REQUIRED, "out", "value")


def test_input_given_both_a_value_and_a_link(registry: Registry) -> None:
    both = {"type": "Add", "inputs": {"a": 1}, "links": {"a": "k.value"}}
    e = one(graph(k=K, s=both, out={"type": "ShowInt", "links": {"value": "s.value"}}), registry)
    assert (e.code, e.node_id, e.input) == (ErrorCode.INPUT_CONFLICT, "s", "a")


def test_cycle_names_its_nodes_in_order(registry: Registry) -> None:
    nodes = {
        "k": K,
        "p": {"type": "Add", "links": {"a": "k.value", "b": "r.value"}},
        "q": {"type": "Add", "links": {"a": "p.value"}},
        "r": {"type": "Add", "links": {"a": "q.value"}},
        "out": {"type": "ShowInt", "links": {"value": "r.value"}},
    }
    e = one({"nodes": nodes}, registry)
    assert e.code == ErrorCode.CYCLE
    assert e.cycle == ["p", "q", "r"]
    assert "p → q → r → p" in e.message


def test_self_loop_is_a_cycle(registry: Registry) -> None:
    nodes = {
        "s": {"type": "Add", "links": {"a": "s.value"}},
        "out": {"type": "ShowInt", "links": {"value": "s.value"}},
    }
    e = one({"nodes": nodes}, registry)
    assert (e.code, e.cycle) == (ErrorCode.CYCLE, ["s"])


def test_no_output_node(registry: Registry) -> None:
    e = one({"nodes": {"k": K}}, registry)
    assert e.code == ErrorCode.NO_OUTPUT_NODE


def test_requested_output_must_exist(registry: Registry) -> None:
    e = one({"nodes": {"k": K}, "outputs": ["nope"]}, registry)
    assert (e.code, e.node_id) == (ErrorCode.UNKNOWN_OUTPUT_NODE, "nope")


def test_structural_errors_name_their_place(registry: Registry) -> None:
    errors = errors_of({"nodes": {"k": {"inputs": {}}, "bad id!": K}, "extra": 1}, registry)
    assert {e.code for e in errors} == {ErrorCode.INVALID_GRAPH}
    messages = " | ".join(e.message for e in errors)
    assert "nodes.k.type" in messages and "extra" in messages and "bad id!" in messages


def test_all_errors_are_collected_not_just_the_first(registry: Registry) -> None:
    nodes = {
        "a": {"type": "Constant", "inputs": {"value": 5.9}},
        "b": {"type": "Constant", "inputs": {"value": 1, "bogus": 1}},
        "x": {"type": "Nope"},
        "s": {"type": "Add", "links": {"a": "a.value", "b": "ghost.value"}},
        "out": {"type": "Show", "links": {"text": "s.value"}},
    }
    codes = sorted(e.code.value for e in errors_of({"nodes": nodes}, registry))
    assert codes == [
        "invalid_type",
        "link_to_missing_node",
        "type_mismatch",
        "unknown_input",
        "unknown_node_type",
    ]


def test_error_renders_with_its_location(registry: Registry) -> None:
    e = one(graph(k={"type": "Constant", "inputs": {"value": 5000}}), registry)
    assert e.render().startswith("k.value: 5000 is out of range")
    assert e.render().endswith("[value_out_of_range]")
