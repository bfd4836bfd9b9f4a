"""Graph validation: every error at once, each with its code, node and input; nothing is coerced."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx
from pydantic import ValidationError

from engine.config import Paths
from engine.errors import ErrorCode, GraphError, GraphValidationError
from engine.graph import GraphFile, parse_graph_partially, split_link
from engine.node import ChoiceError, InputSpec, InvalidValue, Node
from engine.ports import port_by_name
from engine.registry import Registry

_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


@dataclass(frozen=True)
class BoundNode:
    """A validated node: its class, checked literal values (defaults filled in) and resolved links."""

    id: str
    cls: type[Node]
    literals: dict[str, Any]
    links: dict[str, tuple[str, str]]
    position: int


@dataclass(frozen=True)
class ValidatedGraph:
    """A graph that passed validation, ready to plan; `targets` are the nodes to compute."""

    nodes: dict[str, BoundNode]
    targets: list[str]
    document: dict[str, Any]
    # The graph a node belongs to when it differs from `document` (a sweep's combinations).
    node_documents: dict[str, dict[str, Any]] = field(default_factory=dict)

    def dependency_graph(self) -> nx.DiGraph:
        """Nodes with an edge from each producer to each consumer."""
        graph = nx.DiGraph()
        graph.add_nodes_from(self.nodes)
        for bound in self.nodes.values():
            for source, _ in bound.links.values():
                graph.add_edge(source, bound.id)
        return graph


def validate_graph(document: Any, registry: Registry, paths: Paths | None = None) -> ValidatedGraph:
    """Check a graph document against the registry; raises GraphValidationError listing every error."""
    graph, bound, targets = _bind(document, registry, paths)
    return ValidatedGraph(bound, targets, graph.model_dump(mode="json", exclude_none=True))


def bind_graph(
    document: Any, registry: Registry, paths: Paths | None = None
) -> tuple[dict[str, BoundNode], list[str]]:
    """`validate_graph`'s nodes and targets without its normalized copy of the document.

    For callers that already hold a parsed `GraphFile` (pass it: it is not parsed again) and
    need no document back, such as the subgraph composer.
    """
    _, bound, targets = _bind(document, registry, paths)
    return bound, targets


def _bind(
    document: Any, registry: Registry, paths: Paths | None
) -> tuple[GraphFile, dict[str, BoundNode], list[str]]:
    graph, errors = parse_graph_partially(document)
    if graph is None:
        raise GraphValidationError(errors)
    bound: dict[str, BoundNode] = {}
    for position, (node_id, entry) in enumerate(graph.nodes.items()):
        cls = registry.get(entry.type)
        if cls is None:
            errors.append(
                GraphError(
                    code=ErrorCode.UNKNOWN_NODE_TYPE,
                    message=f"unknown node type {entry.type!r}",
                    node_id=node_id,
                    value=entry.type,
                )
            )
            continue
        literals, links, node_errors = _check_inputs(node_id, cls, graph, registry, paths)
        errors.extend(node_errors)
        bound[node_id] = BoundNode(node_id, cls, literals, links, position)
    errors.extend(_cycle_errors(graph))
    targets, target_errors = _targets(graph, bound, registry)
    errors.extend(target_errors)
    if errors:
        raise GraphValidationError(errors)
    return graph, bound, targets


def _check_inputs(
    node_id: str, cls: type[Node], graph: GraphFile, registry: Registry, paths: Paths | None
) -> tuple[dict[str, Any], dict[str, tuple[str, str]], list[GraphError]]:
    entry = graph.nodes[node_id]
    spec = cls.spec
    errors: list[GraphError] = []
    literals: dict[str, Any] = {}
    links: dict[str, tuple[str, str]] = {}

    def error(code: ErrorCode, message: str, input_name: str, value: Any = None) -> None:
        errors.append(
            GraphError(code=code, message=message, node_id=node_id, input=input_name, value=value)
        )

    for name in sorted(set(entry.inputs) | set(entry.links)):
        if spec.input(name) is None:
            known = ", ".join(i.name for i in spec.inputs) or "none"
            value = entry.inputs.get(name, entry.links.get(name))
            error(
                ErrorCode.UNKNOWN_INPUT,
                f"{spec.type} has no input {name!r} (inputs: {known})",
                name,
                value,
            )
    for input_spec in spec.inputs:
        name = input_spec.name
        in_literals, in_links = name in entry.inputs, name in entry.links
        if in_literals and in_links:
            error(ErrorCode.INPUT_CONFLICT, "given both a literal value and a link", name)
        elif in_links:
            link = entry.links[name]
            source = _check_link(link, input_spec, graph, registry)
            if isinstance(source, GraphError):
                errors.append(source.model_copy(update={"node_id": node_id, "input": name}))
            else:
                links[name] = source
        elif in_literals:
            value = entry.inputs[name]
            if input_spec.link_only:
                error(
                    ErrorCode.LINK_REQUIRED,
                    f"{name} takes a {input_spec.type} and must be linked, not given a value",
                    name,
                    value,
                )
                continue
            checked = _check_literal(input_spec, value, paths)
            if isinstance(checked, GraphError):
                errors.append(checked.model_copy(update={"node_id": node_id, "input": name}))
            else:
                literals[name] = checked
        elif input_spec.required:
            how = "a link" if input_spec.link_only else "a value or a link"
            error(
                ErrorCode.MISSING_INPUT,
                f"required input {name} ({input_spec.type}) needs {how}",
                name,
            )
        else:
            literals[name] = input_spec.default
    if not errors:
        given = {name: value for name, value in literals.items() if name not in links}
        for input_name, message in cls.check_literals(given):
            error(ErrorCode.INVALID_VALUE, message, input_name, _shown(given.get(input_name)))
    return literals, links, errors


def _check_link(
    link: str, input_spec: InputSpec, graph: GraphFile, registry: Registry
) -> tuple[str, str] | GraphError:
    source_id, output_name = split_link(link)
    source_entry = graph.nodes.get(source_id)
    if source_entry is None and source_id in graph.broken_nodes:
        return source_id, output_name  # its structure error is already reported
    if source_entry is None:
        return GraphError(
            code=ErrorCode.LINK_TO_MISSING_NODE,
            message=f"links to a missing node {source_id!r}",
            value=link,
        )
    source_cls = registry.get(source_entry.type)
    if source_cls is None:
        # The unknown type is reported on the source node; nothing more to check here.
        return source_id, output_name
    output = source_cls.spec.output(output_name)
    if output is None:
        names = ", ".join(o.name for o in source_cls.spec.outputs) or "none"
        return GraphError(
            code=ErrorCode.LINK_TO_MISSING_OUTPUT,
            message=f"{source_id} ({source_entry.type}) has no output {output_name!r} (outputs: {names})",
            value=link,
        )
    target_type, source_type = port_by_name(input_spec.type), port_by_name(output.type)
    if target_type is None or source_type is None or not target_type.accepts(source_type):
        return GraphError(
            code=ErrorCode.TYPE_MISMATCH,
            message=f"expects {input_spec.type} but {link} is {output.type}",
            value=link,
        )
    return source_id, output_name


def _check_literal(input_spec: InputSpec, value: Any, paths: Paths | None) -> Any:
    try:
        return input_spec.validate_literal(value, paths)
    except ChoiceError as exc:
        return GraphError(
            code=ErrorCode.VALUE_NOT_IN_CHOICES, message=_choice_message(value, exc), value=value
        )
    except InvalidValue as exc:
        return GraphError(code=ErrorCode.INVALID_VALUE, message=str(exc), value=_shown(value))
    except ValidationError as exc:
        return _literal_error(input_spec, value, exc.errors()[0])


def _choice_message(value: Any, exc: ChoiceError) -> str:
    shown = exc.allowed if len(exc.allowed) <= 20 else [*exc.allowed[:20], "..."]
    if exc.where is None:
        return f"{_shown(value)!r} is not one of {shown}"
    hint = (
        "put the file there, or point the folder setting (--models/--input, or its environment "
        "variable) at the folder that has it"
    )
    if not exc.allowed:
        return f"{_shown(value)!r} is not in {exc.where}, which has no usable files; {hint}"
    return f"{_shown(value)!r} is not in {exc.where}; found: {shown}; {hint}"


def _shown(value: Any) -> Any:
    """Long values are cut in messages and error values, so an error stays readable."""
    if isinstance(value, str):
        return value if len(value) <= 200 else value[:200] + "..."
    if isinstance(value, (list, dict)) and len(repr(value)) > 200:
        return f"<{type(value).__name__} of {len(value)} items>"
    return value


def _literal_error(input_spec: InputSpec, value: Any, detail: Any) -> GraphError:
    kind = detail["type"]
    if kind in _RANGE_ERRORS:
        bounds = [
            f"{label} {bound}"
            for label, bound in (
                (">=", input_spec.ge),
                (">", input_spec.gt),
                ("<=", input_spec.le),
                ("<", input_spec.lt),
            )
            if bound is not None
        ]
        return GraphError(
            code=ErrorCode.VALUE_OUT_OF_RANGE,
            message=f"{_shown(value)!r} is out of range (must be {' and '.join(bounds)})",
            value=_shown(value),
        )
    if kind == "multiple_of":
        return GraphError(
            code=ErrorCode.VALUE_NOT_MULTIPLE,
            message=f"{_shown(value)!r} is not a multiple of {input_spec.multiple_of:g}",
            value=_shown(value),
        )
    if kind == "literal_error":
        return GraphError(
            code=ErrorCode.VALUE_NOT_IN_CHOICES,
            message=f"{_shown(value)!r} is not one of {input_spec.choices}",
            value=_shown(value),
        )
    return GraphError(
        code=ErrorCode.INVALID_TYPE,
        message=f"expects {input_spec.type} but got {type(value).__name__} {_shown(value)!r} ({detail['msg']})",
        value=_shown(value),
    )


def _cycle_errors(graph: GraphFile) -> list[GraphError]:
    links = nx.DiGraph()
    for node_id, entry in graph.nodes.items():
        for link in entry.links.values():
            source_id, _ = split_link(link)
            if source_id in graph.nodes:
                links.add_edge(source_id, node_id)
    errors = []
    for component in nx.strongly_connected_components(links):
        if len(component) == 1 and not any(links.has_edge(n, n) for n in component):
            continue
        cycle = [edge[0] for edge in nx.find_cycle(links.subgraph(component))]
        order = sorted(cycle, key=list(graph.nodes).index)
        start = cycle.index(order[0])
        cycle = cycle[start:] + cycle[:start]
        errors.append(
            GraphError(
                code=ErrorCode.CYCLE,
                message="the graph has a cycle: " + " → ".join([*cycle, cycle[0]]),
                node_id=cycle[0],
                cycle=cycle,
            )
        )
    return errors


def _targets(
    graph: GraphFile, bound: dict[str, BoundNode], registry: Registry
) -> tuple[list[str], list[GraphError]]:
    if graph.outputs is not None:
        if not graph.outputs:
            return [], [
                GraphError(
                    code=ErrorCode.NO_OUTPUT_NODE,
                    message='"outputs" is empty, so nothing would run; list node ids or leave it out',
                )
            ]
        missing = [n for n in graph.outputs if n not in graph.nodes and n not in graph.broken_nodes]
        errors = [
            GraphError(
                code=ErrorCode.UNKNOWN_OUTPUT_NODE,
                message=f"requested output {n!r} is not a node of this graph",
                node_id=n,
            )
            for n in missing
        ]
        return [n for n in graph.outputs if n in graph.nodes], errors
    targets = [n for n, b in bound.items() if b.cls.spec.output_node]
    unknown_types = any(e.type not in registry for e in graph.nodes.values())
    if not targets and not unknown_types and not graph.broken_nodes:
        return [], [
            GraphError(
                code=ErrorCode.NO_OUTPUT_NODE,
                message="the graph has no output node (such as SaveImage), so nothing would run",
            )
        ]
    return targets, []
