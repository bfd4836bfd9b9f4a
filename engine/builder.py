"""Graphs in Python: add nodes with their real input names, link outputs as typed ports, get JSON back.

    g = Graph()
    ckpt = g.add(LoadCheckpoint, node_id="checkpoint", checkpoint="tiny-sd1.safetensors")
    pos = g.add(EncodeText, clip=ckpt.clip, text="a fox")

Every `add` is checked at once against the node's declaration (unknown inputs, missing ones,
port types, literal values), so a mistake raises at the line that wrote it. `to_dict` gives the
graph file format; `Graph.from_dict` reads it back with the same ids.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from engine.errors import ErrorCode, GraphError, GraphValidationError
from engine.graph import NODE_ID_PATTERN, parse_graph
from engine.node import Node, NodeSpec
from engine.ports import port_by_name
from engine.registry import Registry, default_registry

if TYPE_CHECKING:
    from engine.context import CancelToken
    from engine.events import EventSink
    from engine.executor import Executor
    from engine.run_results import Results

T_co = TypeVar("T_co", covariant=True)
SweepMode = Literal["product", "zip"]
_ID = re.compile(NODE_ID_PATTERN)
SUBGRAPH_TYPE = "Subgraph"
INPUTS_NODE = "inputs"  # as in engine.subgraph, which imports this module lazily


class GraphBuildError(GraphValidationError):
    """A node added in Python does not fit its declaration; `errors` says where and why."""

    def __str__(self) -> str:
        return "; ".join(e.render() for e in self.errors)


class Port(Generic[T_co]):
    """One output of one node of a `Graph`: pass it as another node's input to link them.

    `T_co` is the Python class of the value that will flow (for the type checker); `type` is the
    port type's name (MODEL, LATENT, ...), which `Graph.add` checks against the input it feeds.
    """

    __slots__ = ("graph", "name", "node_id", "type")

    def __init__(self, graph: Graph, node_id: str, name: str, type_name: str) -> None:
        self.graph, self.node_id, self.name, self.type = graph, node_id, name, type_name

    @property
    def link(self) -> str:
        """The link as the graph file writes it: "node_id.output"."""
        return f"{self.node_id}.{self.name}"

    def __repr__(self) -> str:
        return f"Port({self.link}: {self.type})"


class NodeHandle(Protocol):
    """What every added node offers, whatever its outputs (the typed handles extend it)."""

    @property
    def id(self) -> str: ...

    @property
    def spec(self) -> NodeSpec: ...


class NodeRef:
    """A node of a `Graph`; its outputs are attributes holding `Port`s (`ckpt.clip`)."""

    def __init__(self, graph: Graph, node_id: str, spec: NodeSpec) -> None:
        self._graph, self._id, self._spec = graph, node_id, spec

    @property
    def id(self) -> str:
        """The node's id in the graph file."""
        return self._id

    @property
    def spec(self) -> NodeSpec:
        """The node type's declaration (for a subgraph: its declared ports)."""
        return self._spec

    def port(self, name: str) -> Port[Any]:
        """The output called `name`; raises AttributeError naming the outputs there are."""
        output = self._spec.output(name)
        if output is None:
            names = ", ".join(o.name for o in self._spec.outputs) or "none"
            raise AttributeError(
                f"{self._id} ({self._spec.type}) has no output {name!r} (outputs: {names})"
            )
        return Port(self._graph, self._id, name, output.type)

    def __getattr__(self, name: str) -> Port[Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.port(name)

    def __repr__(self) -> str:
        return f"NodeRef({self._id}: {self._spec.type})"


class Graph:
    """A graph being built in Python; `to_dict` is the graph file it stands for."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry if registry is not None else default_registry()
        self._nodes: dict[str, dict[str, Any]] = {}
        self._refs: dict[str, NodeRef] = {}
        self.outputs: list[str] | None = None
        self.sweeps: dict[str, list[Any]] = {}
        self.sweep_mode: SweepMode = "product"
        self._interface: dict[str, dict[str, Any]] = {"inputs": {}, "outputs": {}}

    # --- Building. ---

    def add(self, node: type[Node] | str, /, *, node_id: str | None = None, **inputs: Any) -> Any:
        """Add a node with its inputs (literal values, or `Port`s to link); returns its `NodeRef`.

        `node` is a node class (or its type name); `node_id` defaults to the type in snake case,
        numbered when taken. Raises GraphBuildError listing every mistake in this call.
        """
        spec = self._spec(node)
        return self._add(spec, node_id, inputs, extra={})

    def add_subgraph(
        self,
        subgraph: str | dict[str, Any] | Graph,
        /,
        *,
        node_id: str | None = None,
        **inputs: Any,
    ) -> NodeRef:
        """Add a subgraph as one node: a file name (in the subgraphs folder), or a graph to embed.

        Its declared inputs are checked like any node's; its declared outputs are its ports.
        """
        from engine.subgraph import subgraph_spec

        if isinstance(subgraph, Graph):
            subgraph = subgraph.to_dict()

        spec = subgraph_spec(subgraph, self.registry)
        base = Path(subgraph).stem if isinstance(subgraph, str) else "subgraph"
        return self._add(spec, node_id, inputs, extra={"subgraph": subgraph}, base=base)

    def _add(
        self,
        spec: NodeSpec,
        node_id: str | None,
        inputs: dict[str, Any],
        extra: dict[str, Any],
        base: str | None = None,
    ) -> NodeRef:
        wanted = node_id if node_id is not None else (base or spec.type)
        node_id = self._new_id(wanted, given=node_id is not None)
        literals, links, errors = {}, {}, []

        def error(code: ErrorCode, message: str, name: str | None, value: Any = None) -> None:
            errors.append(
                GraphError(code=code, message=message, node_id=node_id, input=name, value=value)
            )

        for name, value in inputs.items():
            input_spec = spec.input(name)
            if input_spec is None:
                known = ", ".join(i.name for i in spec.inputs) or "none"
                error(
                    ErrorCode.UNKNOWN_INPUT,
                    f"{spec.type} has no input {name!r} (inputs: {known})",
                    name,
                )
            elif isinstance(value, NodeRef):
                outs = ", ".join(f"{value.id}.{o.name}" for o in value.spec.outputs)
                error(
                    ErrorCode.INVALID_LINK,
                    f"pass one output of {value.id} ({outs}), not the node",
                    name,
                )
            elif isinstance(value, Port):
                if value.graph is not self:
                    error(ErrorCode.INVALID_LINK, f"{value.link} belongs to another Graph", name)
                    continue
                target, source = port_by_name(input_spec.type), port_by_name(value.type)
                if target is None or source is None or not target.accepts(source):
                    error(
                        ErrorCode.TYPE_MISMATCH,
                        f"{spec.type}.{name} expects {input_spec.type} but {value.link} is {value.type}",
                        name,
                        value.link,
                    )
                    continue
                links[name] = value.link
            elif input_spec.link_only:
                error(
                    ErrorCode.LINK_REQUIRED,
                    f"{name} takes a {input_spec.type} and must be linked to an output, not given a value",
                    name,
                )
            else:
                checked = _check_literal(input_spec, value)
                if checked is not None:
                    errors.append(checked.model_copy(update={"node_id": node_id, "input": name}))
                else:
                    literals[name] = value
        for input_spec in spec.inputs:
            if input_spec.required and input_spec.name not in inputs:
                how = "a link" if input_spec.link_only else "a value or a link"
                error(
                    ErrorCode.MISSING_INPUT,
                    f"required input {input_spec.name} ({input_spec.type}) needs {how}",
                    input_spec.name,
                )
        if errors:
            raise GraphBuildError(errors)
        entry: dict[str, Any] = {"type": SUBGRAPH_TYPE if extra else spec.type, **extra}
        if literals:
            entry["inputs"] = literals
        if links:
            entry["links"] = links
        self._nodes[node_id] = entry
        ref = self._refs[node_id] = NodeRef(self, node_id, spec)
        return ref

    def input(self, name: str, type_name: str, *, default: Any = None) -> Port[Any]:
        """Declare an input of this graph as a subgraph; link inner nodes to the port returned."""
        if port_by_name(type_name) is None:
            raise ValueError(f"unknown port type {type_name!r}")
        declared: dict[str, Any] = {"type": type_name}
        if default is not None:
            declared["default"] = default
        self._interface["inputs"][name] = declared
        return Port(self, INPUTS_NODE, name, type_name)

    def output(self, name: str, port: Port[Any]) -> None:
        """Declare an output of this graph as a subgraph, provided by `port`."""
        if port.graph is not self:
            raise ValueError(f"{port.link} belongs to another Graph")
        self._interface["outputs"][name] = {"type": port.type, "source": port.link}

    def sweep(self, node: NodeHandle, /, **values: Sequence[Any]) -> None:
        """Run the graph once per value of these inputs of `node` (see `sweep_mode`)."""
        for name, options in values.items():
            if node.spec.input(name) is None:
                known = ", ".join(i.name for i in node.spec.inputs) or "none"
                raise GraphBuildError(
                    [
                        GraphError(
                            code=ErrorCode.UNKNOWN_INPUT,
                            message=f"{node.spec.type} has no input {name!r} (inputs: {known})",
                            node_id=node.id,
                            input=name,
                        )
                    ]
                )
            self.sweeps[f"{node.id}.{name}"] = list(options)

    # --- Reading. ---

    def __getitem__(self, node_id: str) -> NodeRef:
        return self._refs[node_id]

    def __iter__(self) -> Iterator[NodeRef]:
        return iter(self._refs.values())

    def __len__(self) -> int:
        return len(self._refs)

    # --- The graph file format. ---

    def to_dict(self) -> dict[str, Any]:
        """The graph as a graph-file document."""
        document: dict[str, Any] = {
            "version": 1,
            "nodes": json.loads(json.dumps(self._nodes)),
        }
        if self.outputs is not None:
            document["outputs"] = list(self.outputs)
        if self.sweeps:
            document["sweep"] = {"values": dict(self.sweeps), "mode": self.sweep_mode}
        if self._interface["inputs"] or self._interface["outputs"]:
            document["interface"] = json.loads(json.dumps(self._interface))
        return document

    def to_json(self, indent: int | None = 2) -> str:
        """The graph file's text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def save(self, path: str | Path) -> None:
        """Write the graph file."""
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, document: Any, registry: Registry | None = None) -> Graph:
        """A graph read from a graph-file document, keeping its node ids; links are not re-checked.

        Nodes of unknown types are kept (they fail when the graph is validated or run).
        """
        from engine.subgraph import subgraph_spec

        parsed = parse_graph(document)
        graph = cls(registry)
        dumped = parsed.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        for node_id, entry in dumped["nodes"].items():
            graph._nodes[node_id] = entry
            node_cls = graph.registry.get(entry["type"])
            if entry["type"] == SUBGRAPH_TYPE and "subgraph" in entry:
                spec = subgraph_spec(entry["subgraph"], graph.registry)
            elif node_cls is not None:
                spec = node_cls.spec
            else:
                spec = NodeSpec(
                    type=entry["type"],
                    version="0.0.0",
                    category="unknown",
                    display_name=entry["type"],
                    description="",
                    output_node=False,
                    volatile=False,
                    inputs=[],
                    outputs=[],
                    module="",
                )
            graph._refs[node_id] = NodeRef(graph, node_id, spec)
        graph.outputs = parsed.outputs
        if parsed.interface is not None:
            graph._interface = parsed.interface.model_dump(
                mode="json", include={"inputs", "outputs"}, exclude_defaults=True
            )
        if parsed.sweep is not None:
            graph.sweeps = {k: list(v) for k, v in parsed.sweep.values.items()}
            graph.sweep_mode = parsed.sweep.mode
        return graph

    @classmethod
    def load(cls, path: str | Path, registry: Registry | None = None) -> Graph:
        """Read a graph file."""
        from engine.graph import load_graph

        return cls.from_dict(load_graph(path), registry)

    # --- Running. ---

    def run(
        self,
        executor: Executor | None = None,
        *,
        fetch: Iterable[NodeHandle | Port[Any]] = (),
        on_event: EventSink | None = None,
        cancel: CancelToken | None = None,
        check: bool = True,
    ) -> Results:
        """Run the graph; `fetch` names nodes whose output values you want back as Python objects.

        Output nodes (SaveImage, ...) run as usual; with `check` a failed run raises `RunError`.
        """
        from engine.executor import Executor
        from engine.run_results import run_graph

        executor = executor if executor is not None else Executor(self.registry)
        return run_graph(self, executor, fetch, on_event=on_event, cancel=cancel, check=check)

    def document_for_run(self, fetch: Iterable[NodeHandle | Port[Any]]) -> dict[str, Any]:
        """`to_dict`, with the fetched nodes added to what is computed."""
        document = self.to_dict()
        wanted = [item.node_id if isinstance(item, Port) else item.id for item in fetch]
        if wanted:
            base = self.outputs if self.outputs is not None else self._output_nodes()
            document["outputs"] = list(dict.fromkeys([*base, *wanted]))
        return document

    # --- Helpers. ---

    def _output_nodes(self) -> list[str]:
        return [n for n, ref in self._refs.items() if ref.spec.output_node]

    def _spec(self, node: type[Node] | str) -> NodeSpec:
        if isinstance(node, str):
            found = self.registry.get(node)
            if found is None:
                raise GraphBuildError(
                    [
                        GraphError(
                            code=ErrorCode.UNKNOWN_NODE_TYPE,
                            message=f"unknown node type {node!r}",
                            value=node,
                        )
                    ]
                )
            return found.spec
        spec = getattr(node, "spec", None)
        if not isinstance(spec, NodeSpec):
            raise TypeError(f"{node!r} is not a node class declared with @node(...)")
        return spec

    def _new_id(self, wanted: str, *, given: bool) -> str:
        if given:
            if not _ID.match(wanted):
                raise GraphBuildError(
                    [
                        GraphError(
                            code=ErrorCode.INVALID_GRAPH,
                            message=f"node id {wanted!r} must match {NODE_ID_PATTERN}",
                            node_id=wanted,
                        )
                    ]
                )
            if wanted in self._nodes:
                raise GraphBuildError(
                    [
                        GraphError(
                            code=ErrorCode.INVALID_GRAPH,
                            message=f"the graph already has a node {wanted!r}",
                            node_id=wanted,
                        )
                    ]
                )
            return wanted
        base = _snake(wanted)
        if base not in self._nodes:
            return base
        number = 2
        while f"{base}_{number}" in self._nodes:
            number += 1
        return f"{base}_{number}"


def _snake(name: str) -> str:
    """`LoadCheckpoint` → `load_checkpoint`, `VAEDecode` → `vae_decode`."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    cleaned = re.sub(r"[^A-Za-z0-9_]+", "_", spaced).strip("_").lower()
    return cleaned if cleaned and not cleaned[0].isdigit() else f"node_{cleaned}"


def _check_literal(input_spec: Any, value: Any) -> GraphError | None:
    # The validator's own literal check, so a value fails here exactly as it would in a file.
    from engine.validate import _check_literal as check

    checked = check(input_spec, value, None)
    return checked if isinstance(checked, GraphError) else None
