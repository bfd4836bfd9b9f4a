"""Subgraphs: a graph with a declared `interface` used as one node of another graph.

    "prompts": {"type": "Subgraph", "subgraph": "prompt_pair.json",
                "inputs": {"positive": "a fox"}, "links": {"clip": "checkpoint.clip"}}

The outer graph is validated with the subgraph as a node whose ports are the declared ones, so a
missing or mistyped port is an ordinary validation error. Then every subgraph node is inlined:
its inner nodes become nodes of the run, with path ids (`prompts/encode`), links to the declared
inputs (`inputs.NAME` inside the subgraph) replaced by what the outer node was given. Errors
inside, at validation or at run time, carry those path ids; progress events do too, so they land
under the outer node; and since lineage keys ignore ids, two uses with the same inputs share
their inner nodes' work.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Strict, TypeAdapter

from engine.config import Paths
from engine.errors import ErrorCode, GraphError, GraphValidationError
from engine.graph import GraphFile, Interface, parse_graph, split_link
from engine.node import InputSpec, Node, NodeSpec, OutputSpec
from engine.ports import port_by_name
from engine.registry import Registry
from engine.validate import BoundNode, bind_graph

SUBGRAPH_TYPE = "Subgraph"
INPUTS_NODE = "inputs"  # inside a subgraph, links "inputs.NAME" read its declared inputs
SUBGRAPHS_ENV = "LATENTGRAPH_SUBGRAPHS"
DEFAULT_FOLDER = "subgraphs"
MAX_DEPTH = 16
PATH_SEPARATOR = "/"
_PRIMITIVE_PYTHON: dict[str, type] = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}


class SubgraphError(ValueError):
    """A subgraph reference that cannot be used: no such file, bad JSON, no interface."""


def subgraph_folder() -> Path:
    """The folder of reusable subgraphs: `$LATENTGRAPH_SUBGRAPHS`, else ./subgraphs."""
    return Path(os.environ.get(SUBGRAPHS_ENV) or DEFAULT_FOLDER).expanduser().resolve()


def resolve_file(reference: str, base_dirs: Sequence[Path] = ()) -> Path:
    """The subgraph file a reference names: relative, without `..`, next to the graph or in the folder."""
    relative = Path(reference)
    if relative.is_absolute() or ".." in relative.parts or not reference.strip():
        raise SubgraphError(
            f"subgraph {reference!r} must be a relative path inside the subgraphs folder"
        )
    for folder in (*base_dirs, subgraph_folder()):
        candidate = folder / relative
        if candidate.is_file():
            return candidate
    raise SubgraphError(f"no subgraph file {reference!r} in {subgraph_folder()}")


def load_definition(reference: Any, base_dirs: Sequence[Path] = ()) -> GraphFile:
    """A subgraph definition from a file reference or an embedded document; raises SubgraphError."""
    if isinstance(reference, GraphFile):
        definition = reference
    elif isinstance(reference, (str, Path)):
        path = resolve_file(str(reference), base_dirs)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SubgraphError(f"cannot read subgraph {reference!r}: {exc}") from None
        definition = _parse(document, str(reference))
    else:
        definition = _parse(reference, "embedded")
    if definition.interface is None:
        raise SubgraphError("a subgraph must declare an `interface` (its inputs and outputs)")
    return definition


def interface_spec(definition: GraphFile, type_name: str, output_node: bool = False) -> NodeSpec:
    """The node spec a subgraph offers: its declared inputs and outputs as ports."""
    interface = definition.interface or Interface()
    inputs = []
    for name, declared in interface.inputs.items():
        primitive = declared.type in _PRIMITIVE_PYTHON
        spec = InputSpec(
            name=name,
            type=declared.type,
            required=declared.default is None,
            default=declared.default,
            link_only=not primitive,
            tooltip=declared.description,
            display_name=_title(name),
        )
        if primitive:
            spec._adapter = TypeAdapter(_strict(declared.type))
        inputs.append(spec)
    outputs = [
        OutputSpec(name=name, type=declared.type, display_name=_title(name))
        for name, declared in interface.outputs.items()
    ]
    return NodeSpec(
        type=type_name,
        version="1.0.0",
        category="subgraphs",
        display_name=type_name,
        description=interface.description,
        output_node=output_node,
        volatile=False,
        inputs=inputs,
        outputs=outputs,
        module=__name__,
    )


def subgraph_spec(reference: Any, registry: Registry, base_dirs: Sequence[Path] = ()) -> NodeSpec:
    """The ports of a subgraph (a file reference or an embedded document), as a node spec."""
    definition = load_definition(reference, base_dirs)
    dirs = (*base_dirs, subgraph_folder())
    output_node = _Composer(registry, None).has_output_node(definition, dirs)
    return interface_spec(definition, SUBGRAPH_TYPE, output_node)


def list_subgraphs(registry: Registry, folder: Path | None = None) -> dict[str, Any]:
    """The subgraphs in the folder that an editor can offer, by file name, with their ports.

    Files that do not parse or declare no interface are left out.
    """
    folder = folder or subgraph_folder()
    found: dict[str, Any] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.json")):
        try:
            definition = load_definition(path.name, ())
        except (SubgraphError, GraphValidationError):
            continue
        composer = _Composer(registry, None)
        spec = interface_spec(
            definition, path.name, composer.has_output_node(definition, (folder,))
        )
        entry = spec.model_dump()
        entry.update(type=SUBGRAPH_TYPE, subgraph=path.name, display_name=_title(path.stem))
        found[path.name] = entry
    return found


@dataclass
class FlatGraph:
    """A graph with every subgraph inlined: its nodes, targets, and where subgraph outputs come from."""

    nodes: dict[str, BoundNode]
    targets: list[str]
    # (subgraph node id, declared output) → (inner node path, its output), for fetching values.
    ports: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)


def compose(
    document: dict[str, Any] | GraphFile,
    registry: Registry,
    paths: Paths | None,
    base_dirs: Sequence[Path] = (),
) -> FlatGraph:
    """Validate a graph that may use subgraphs and inline them; raises GraphValidationError.

    A `GraphFile` is used as it is, not parsed again.
    """
    return _Composer(registry, paths).flatten(parse_graph(document), tuple(base_dirs), (), None)


# --- How it works. ---


@dataclass
class _Definition:
    """A loaded subgraph: its node class for the outer graph, its inlined inner graph or its errors."""

    type_name: str
    node_class: type[Node]
    flat: FlatGraph | None
    outputs: dict[str, tuple[str, str]]
    errors: list[GraphError]


class _Composer:
    def __init__(self, registry: Registry, paths: Paths | None) -> None:
        self.registry, self.paths = registry, paths
        self._definitions: dict[str, _Definition] = {}

    def flatten(
        self,
        graph: GraphFile,
        base_dirs: tuple[Path, ...],
        stack: tuple[str, ...],
        interface: Interface | None,
    ) -> FlatGraph:
        if interface is None and not any(
            entry.type == SUBGRAPH_TYPE or entry.subgraph is not None
            for entry in graph.nodes.values()
        ):
            # Nothing to inline: bind the parsed graph as it is, without dumping and re-parsing it.
            nodes, targets = bind_graph(graph, self.registry, self.paths)
            return self._inline(nodes, targets, {})
        document = graph.model_dump(mode="json", exclude_none=True)
        document.pop("sweep", None)
        document.pop("interface", None)
        errors: list[GraphError] = []
        uses: dict[str, _Definition] = {}
        unusable: set[str] = set()
        extra: list[type[Node]] = []
        for node_id, entry in document["nodes"].items():
            has_reference = "subgraph" in entry
            if entry["type"] != SUBGRAPH_TYPE and not has_reference:
                continue
            where = {"node_id": node_id, "input": "subgraph"}
            if entry["type"] != SUBGRAPH_TYPE or not has_reference:
                message = (
                    'a node with "subgraph" must have "type": "Subgraph"'
                    if has_reference
                    else 'a "Subgraph" node needs "subgraph": a file name or an embedded graph'
                )
                errors.append(GraphError(code=ErrorCode.INVALID_GRAPH, message=message, **where))
                unusable.add(node_id)
                continue
            try:
                definition = self._definition(entry.pop("subgraph"), node_id, base_dirs, stack)
            except SubgraphError as exc:
                errors.append(GraphError(code=ErrorCode.INVALID_GRAPH, message=str(exc), **where))
                unusable.add(node_id)
                continue
            entry["type"] = definition.type_name
            uses[node_id] = definition
            extra.append(definition.node_class)
            errors += [_under(node_id, e) for e in definition.errors]
        if interface is not None:
            if INPUTS_NODE in document["nodes"]:
                errors.append(
                    GraphError(
                        code=ErrorCode.INVALID_GRAPH,
                        message=f"{INPUTS_NODE!r} is reserved in a subgraph for its declared inputs",
                        node_id=INPUTS_NODE,
                    )
                )
            else:
                inputs_class = _node_class(_inputs_spec(interface))
                document["nodes"][INPUTS_NODE] = {"type": inputs_class.spec.type}
                extra.append(inputs_class)
                document["outputs"] = self._inner_targets(document, interface, extra)
        registry = Registry([*self.registry, *extra])
        try:
            validated = bind_graph(document, registry, self.paths)
        except GraphValidationError as exc:
            # A broken Subgraph node was already reported; its missing type is no news.
            errors += [
                e
                for e in exc.errors
                if not (e.code == ErrorCode.UNKNOWN_NODE_TYPE and e.node_id in unusable)
            ]
            validated = None
        if errors or validated is None:
            raise GraphValidationError(errors)
        return self._inline(*validated, uses)

    def has_output_node(self, definition: GraphFile, base_dirs: tuple[Path, ...]) -> bool:
        """Whether a subgraph saves or shows something itself (it then runs as an output node)."""
        for entry in definition.nodes.values():
            if entry.type == SUBGRAPH_TYPE and entry.subgraph is not None:
                try:
                    inner = load_definition(entry.subgraph, base_dirs)
                except SubgraphError:
                    continue
                if self.has_output_node(inner, base_dirs):
                    return True
            else:
                cls = self.registry.get(entry.type)
                if cls is not None and cls.spec.output_node:
                    return True
        return False

    def _definition(
        self, reference: Any, node_id: str, base_dirs: tuple[Path, ...], stack: tuple[str, ...]
    ) -> _Definition:
        inner_dirs: tuple[Path, ...]
        if isinstance(reference, str):
            path = resolve_file(reference, base_dirs)
            key, type_name, inner_dirs = str(path), f"{SUBGRAPH_TYPE}[{reference}]", (path.parent,)
        else:
            key = json.dumps(reference, sort_keys=True)
            type_name, inner_dirs = f"{SUBGRAPH_TYPE}[{node_id}]", base_dirs
        if key in stack or len(stack) >= MAX_DEPTH:
            raise SubgraphError(f"subgraph {type_name} includes itself")
        cached = self._definitions.get(key)
        if cached is not None and cached.type_name == type_name:
            return cached
        definition = load_definition(reference, base_dirs)
        assert definition.interface is not None
        errors = _interface_errors(definition.interface)
        flat: FlatGraph | None = None
        outputs: dict[str, tuple[str, str]] = {}
        try:
            flat = self.flatten(definition, inner_dirs, (*stack, key), definition.interface)
        except GraphValidationError as exc:
            errors += exc.errors
        if flat is not None:
            outputs, output_errors = _declared_outputs(definition.interface, flat)
            errors += output_errors
        spec = interface_spec(definition, type_name, self.has_output_node(definition, inner_dirs))
        made = _Definition(type_name, _node_class(spec), flat, outputs, errors)
        self._definitions[key] = made
        return made

    def _inner_targets(
        self, document: dict[str, Any], interface: Interface, classes: list[type[Node]]
    ) -> list[str]:
        """What a subgraph computes: what feeds its declared outputs, and its own output nodes."""
        by_type = {c.spec.type: c for c in classes}
        targets = [split_link(o.source)[0] for o in interface.outputs.values()]
        for node_id, entry in document["nodes"].items():
            cls = by_type.get(entry["type"]) or self.registry.get(entry["type"])
            if cls is not None and cls.spec.output_node:
                targets.append(node_id)
        present = [t for t in targets if t in document["nodes"] and t != INPUTS_NODE]
        return list(dict.fromkeys(present))

    def _inline(
        self,
        bound_nodes: dict[str, BoundNode],
        bound_targets: list[str],
        uses: dict[str, _Definition],
    ) -> FlatGraph:
        ports = {
            (outer, name): (f"{outer}{PATH_SEPARATOR}{src}", out)
            for outer, definition in uses.items()
            for name, (src, out) in definition.outputs.items()
        }

        def source(link: tuple[str, str]) -> tuple[str, str]:
            return ports.get(link, link)

        nodes: dict[str, BoundNode] = {}
        errors: list[GraphError] = []
        ordered = sorted(bound_nodes.values(), key=lambda b: b.position)
        for bound in ordered:
            definition = uses.get(bound.id)
            if definition is None:
                links = {name: source(link) for name, link in bound.links.items()}
                nodes[bound.id] = BoundNode(bound.id, bound.cls, bound.literals, links, len(nodes))
                continue
            assert definition.flat is not None, "a subgraph with errors never validates"
            for inner in sorted(definition.flat.nodes.values(), key=lambda b: b.position):
                if inner.id == INPUTS_NODE:
                    continue
                path = f"{bound.id}{PATH_SEPARATOR}{inner.id}"
                literals, links = dict(inner.literals), {}
                for name, (src, out) in inner.links.items():
                    if src != INPUTS_NODE:
                        links[name] = (f"{bound.id}{PATH_SEPARATOR}{src}", out)
                    elif out in bound.links:
                        links[name] = source(bound.links[out])
                    else:
                        checked = _literal(inner, name, bound.literals.get(out), self.paths)
                        if isinstance(checked, GraphError):
                            errors.append(checked.model_copy(update={"node_id": path}))
                        else:
                            literals[name] = checked
                nodes[path] = BoundNode(path, inner.cls, literals, links, len(nodes))
        if errors:
            raise GraphValidationError(errors)
        targets: list[str] = []
        for target in bound_targets:
            definition = uses.get(target)
            if definition is None:
                targets.append(target)
            elif definition.flat is not None:
                targets += [
                    f"{target}{PATH_SEPARATOR}{t}"
                    for t in definition.flat.targets
                    if t != INPUTS_NODE
                ]
        return FlatGraph(nodes, list(dict.fromkeys(targets)), ports)


def _parse(document: Any, name: str) -> GraphFile:
    try:
        return parse_graph(document)
    except GraphValidationError as exc:
        first = exc.errors[0].render() if exc.errors else "invalid"
        raise SubgraphError(f"subgraph {name} is not a valid graph: {first}") from None


def _inputs_spec(interface: Interface) -> NodeSpec:
    """The pseudo-node `inputs` inside a subgraph: one output per declared input."""
    return NodeSpec(
        type=f"{SUBGRAPH_TYPE}Inputs",
        version="1.0.0",
        category="subgraphs",
        display_name="Subgraph Inputs",
        description="The declared inputs of the subgraph.",
        output_node=False,
        volatile=False,
        inputs=[],
        outputs=[
            OutputSpec(name=name, type=declared.type, display_name=_title(name))
            for name, declared in interface.inputs.items()
        ],
        module=__name__,
    )


def _node_class(spec: NodeSpec) -> type[Node]:
    """A node class standing for a subgraph in validation; it is inlined, so it never runs."""
    return type(spec.type, (_Placeholder,), {"spec": spec})


class _Placeholder(Node):
    def run(self, ctx: Any) -> Any:
        raise RuntimeError("subgraph nodes are inlined before a run; this one was not")


def _interface_errors(interface: Interface) -> list[GraphError]:
    errors = []
    declared = [(f"input {n}", d.type) for n, d in interface.inputs.items()]
    declared += [(f"output {n}", d.type) for n, d in interface.outputs.items()]
    for what, type_name in declared:
        if port_by_name(type_name) is None:
            errors.append(
                GraphError(
                    code=ErrorCode.INVALID_GRAPH,
                    message=f"the subgraph's {what} has an unknown port type {type_name!r}",
                    value=type_name,
                )
            )
    for name, decl in interface.inputs.items():
        if decl.default is None:
            continue
        if decl.type not in _PRIMITIVE_PYTHON:
            errors.append(
                GraphError(
                    code=ErrorCode.INVALID_GRAPH,
                    message=f"the subgraph's input {name} ({decl.type}) is linked, so it has no default",
                )
            )
            continue
        try:
            TypeAdapter(_strict(decl.type)).validate_python(decl.default)
        except ValueError:
            errors.append(
                GraphError(
                    code=ErrorCode.INVALID_TYPE,
                    message=f"the subgraph's input {name} has a default that is not {decl.type}",
                    value=decl.default,
                )
            )
    return errors


def _declared_outputs(
    interface: Interface, flat: FlatGraph
) -> tuple[dict[str, tuple[str, str]], list[GraphError]]:
    """Where each declared output comes from, checked against the type it declares."""
    outputs, errors = {}, []
    for name, declared in interface.outputs.items():
        src, out = split_link(declared.source)
        src, out = flat.ports.get((src, out), (src, out))
        bound = flat.nodes.get(src)
        spec_output = (
            bound.cls.spec.output(out) if bound is not None and src != INPUTS_NODE else None
        )
        if spec_output is None:
            errors.append(
                GraphError(
                    code=ErrorCode.LINK_TO_MISSING_OUTPUT,
                    message=f"the subgraph's output {name} comes from {declared.source}, which is not a node output",
                    value=declared.source,
                )
            )
            continue
        expected, actual = port_by_name(declared.type), port_by_name(spec_output.type)
        if expected is None or actual is None or not expected.accepts(actual):
            errors.append(
                GraphError(
                    code=ErrorCode.TYPE_MISMATCH,
                    message=f"the subgraph's output {name} is declared {declared.type} but {declared.source} is {spec_output.type}",
                    value=declared.source,
                )
            )
            continue
        outputs[name] = (src, out)
    return outputs, errors


def _literal(inner: BoundNode, name: str, value: Any, paths: Paths | None) -> Any:
    """A value given to the outer node, checked as the inner input it reaches."""
    from engine.validate import _check_literal

    input_spec = inner.cls.spec.input(name)
    assert input_spec is not None
    if input_spec.link_only:
        return GraphError(
            code=ErrorCode.LINK_REQUIRED,
            message=f"{name} takes a {input_spec.type} and must be linked",
            input=name,
        )
    checked = _check_literal(input_spec, value, paths)
    if isinstance(checked, GraphError):
        return checked.model_copy(update={"input": name})
    return checked


def _under(outer: str, error: GraphError) -> GraphError:
    """An error inside a subgraph, located by its path from the outer node."""
    inner = error.node_id
    node_id = f"{outer}{PATH_SEPARATOR}{inner}" if inner else outer
    return error.model_copy(update={"node_id": node_id})


def _strict(type_name: str) -> Any:
    from typing import Annotated

    return Annotated[_PRIMITIVE_PYTHON[type_name], Strict()]


def _title(name: str) -> str:
    return name.replace("_", " ").title()
