"""The JSON graph file format: named nodes, literal `inputs` and `links` kept apart, an editor layer.

    {
      "version": 1,
      "nodes": {
        "latent": {"type": "EmptyLatent", "inputs": {"width": 512, "height": 512}},
        "sampler": {"type": "Sample", "inputs": {"seed": 7}, "links": {"latent": "latent.latent"}}
      },
      "editor": {"nodes": {"latent": {"position": [0, 0]}}}
    }

A link is always a string "node.output" under `links`, so it can never be mistaken for a
literal value. `editor` holds positions, titles and groups; the executor never reads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PrivateAttr,
    StringConstraints,
    ValidationError,
)

from engine.documents import DocumentError, check_value, parse_json
from engine.errors import ErrorCode, GraphError, GraphValidationError

GRAPH_FORMAT_VERSION = 1
NODE_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
LINK_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*\.[A-Za-z_][A-Za-z0-9_]*$"

NodeId = Annotated[str, StringConstraints(pattern=NODE_ID_PATTERN, max_length=128)]
LinkRef = Annotated[str, StringConstraints(pattern=LINK_PATTERN)]


class NodeEntry(BaseModel):
    """One node of a graph: its type, its literal inputs and its incoming links."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="The node type, as listed by `latentgraph nodes`.")
    inputs: dict[str, JsonValue] = Field(
        default_factory=dict, description="Literal input values, by input name."
    )
    links: dict[str, LinkRef] = Field(
        default_factory=dict,
        description='Inputs fed by another node\'s output, as "node_id.output_name".',
    )
    subgraph: str | GraphFile | None = Field(
        None,
        description=(
            'For "type": "Subgraph": the subgraph, as a file in the subgraphs folder (or next to '
            "this graph file) or embedded; it must declare an `interface`."
        ),
    )


class EditorNode(BaseModel):
    """Where the editor draws a node; ignored by the executor."""

    model_config = ConfigDict(extra="allow")

    position: tuple[float, float] | None = None
    title: str | None = None
    collapsed: bool = False


class EditorGroup(BaseModel):
    """A titled box around some nodes in the editor; ignored by the executor."""

    model_config = ConfigDict(extra="allow")

    title: str
    bounding: tuple[float, float, float, float]


class EditorLayer(BaseModel):
    """Optional editor metadata kept apart from what runs."""

    model_config = ConfigDict(extra="allow")

    nodes: dict[str, EditorNode] = Field(default_factory=dict)
    groups: list[EditorGroup] = Field(default_factory=list)


class GraphFile(BaseModel):
    """A Latentgraph graph file."""

    model_config = ConfigDict(extra="forbid", title="Latentgraph graph")

    version: Literal[1] = Field(default=1, description="The graph format version.")
    nodes: dict[NodeId, NodeEntry] = Field(description="The nodes, by id.")
    outputs: list[NodeId] | None = Field(
        None, description="Node ids to compute; by default every output node."
    )
    editor: EditorLayer | None = Field(None, description="Editor layout; never executed.")
    # Composition (engine/subgraph.py, engine/sweep.py) lives in its own fields and models below.
    interface: Interface | None = Field(
        None, description="Declared, typed inputs and outputs: makes this graph usable as a node."
    )
    sweep: Sweep | None = Field(
        None, description="Run the graph once per combination of these input values."
    )

    # Node ids dropped by `parse_graph_partially` because their structure was wrong.
    _broken_nodes: set[str] = PrivateAttr(default_factory=set)

    @property
    def broken_nodes(self) -> set[str]:
        """Nodes left out because their structure was wrong (already reported)."""
        return self._broken_nodes


InputPath = Annotated[str, StringConstraints(pattern=LINK_PATTERN)]
PortName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]


class InterfaceInput(BaseModel):
    """A declared input of a subgraph; inner nodes read it through the link "inputs.NAME"."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="The port type (INT, STRING, CLIP, ...).")
    default: JsonValue = Field(None, description="Makes the input optional (primitive types only).")
    description: str = ""


class InterfaceOutput(BaseModel):
    """A declared output of a subgraph: its port type and the inner output that provides it."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="The port type (IMAGE, LATENT, ...).")
    source: LinkRef = Field(description='The inner output, as "node_id.output_name".')
    description: str = ""


class Interface(BaseModel):
    """The ports a graph offers when it is used as one node in another graph."""

    model_config = ConfigDict(extra="forbid")

    inputs: dict[PortName, InterfaceInput] = Field(default_factory=dict)
    outputs: dict[PortName, InterfaceOutput] = Field(default_factory=dict)
    description: str = ""


class Sweep(BaseModel):
    """Values to run the graph over: each key is "node_id.input", each value a list of values."""

    model_config = ConfigDict(extra="forbid")

    values: dict[InputPath, Annotated[list[JsonValue], Field(min_length=1)]] = Field(
        description='Values per input, as {"node_id.input": [value, ...]}.', min_length=1
    )
    mode: Literal["product", "zip"] = Field(
        "product",
        description="product: every combination; zip: the i-th value of every input together.",
    )


NodeEntry.model_rebuild()
GraphFile.model_rebuild()


def split_link(link: str) -> tuple[str, str]:
    """ "sampler.latent" → ("sampler", "latent")."""
    node_id, _, output = link.partition(".")
    return node_id, output


def parse_graph(document: Any) -> GraphFile:
    """Parse a graph document (already decoded JSON); raises GraphValidationError on bad structure."""
    graph, errors = parse_graph_partially(document)
    if errors or graph is None:
        raise GraphValidationError(errors)
    return graph


def parse_graph_partially(document: Any) -> tuple[GraphFile | None, list[GraphError]]:
    """The graph without the nodes and fields whose structure is wrong, and those structure errors.

    Validation goes on with what parsed, so that one malformed node does not hide the errors of
    the others; the graph is None when not even its outline parsed.
    """
    if isinstance(document, GraphFile):
        return document, []
    try:
        check_value(document, "the graph")
    except DocumentError as exc:
        return None, [GraphError(code=ErrorCode.INVALID_GRAPH, message=str(exc))]
    try:
        return GraphFile.model_validate(document), []
    except ValidationError as exc:
        errors = [_structure_error(e) for e in exc.errors()]
        if not isinstance(document, dict) or not isinstance(document.get("nodes"), dict):
            return None, errors
        broken = {
            str(e["loc"][1]) for e in exc.errors() if len(e["loc"]) >= 2 and e["loc"][0] == "nodes"
        }
        bad_fields = {str(e["loc"][0]) for e in exc.errors() if e["loc"] and e["loc"][0] != "nodes"}
        partial = {k: v for k, v in document.items() if k not in bad_fields}
        partial["nodes"] = {k: v for k, v in document["nodes"].items() if k not in broken}
        try:
            graph = GraphFile.model_validate(partial)
        except ValidationError:
            return None, errors
        graph._broken_nodes = broken  # links to these are not reported again
        return graph, errors


def load_graph(path: str | Path) -> GraphFile:
    """Read and parse a graph file; a missing file or bad JSON is an `invalid_graph` error."""
    return parse_graph(read_graph_document(path))


def read_graph_document(path: str | Path) -> Any:
    """The decoded JSON of a graph file; unreadable or malformed files are `invalid_graph` errors."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise GraphValidationError(
            [
                GraphError(
                    code=ErrorCode.INVALID_GRAPH,
                    message=f"cannot read {file}: {exc.strerror or exc}",
                )
            ]
        ) from None
    try:
        return parse_json(raw, str(file))
    except DocumentError as exc:
        raise GraphValidationError(
            [GraphError(code=ErrorCode.INVALID_GRAPH, message=str(exc))]
        ) from None


def graph_json_schema() -> dict[str, Any]:
    """The published JSON Schema of graph files, generated from the pydantic models."""
    schema = GraphFile.model_json_schema()
    if "$ref" in schema:  # subgraphs embed graphs, so pydantic puts the root under $defs
        root = schema["$defs"].pop("GraphFile")
        schema = {**root, "$defs": schema["$defs"]}
        schema = json.loads(json.dumps(schema).replace('"#/$defs/GraphFile"', '"#"'))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://latentgraph.dev/schema/graph-v1.json"
    return schema


def _structure_error(error: Any) -> GraphError:
    loc = [str(p) for p in error["loc"]]
    node_id = loc[1] if len(loc) >= 2 and loc[0] == "nodes" else None
    input_name = loc[3] if len(loc) >= 4 and loc[2] in ("inputs", "links") else None
    where = ".".join(loc) or "graph"
    message = f"{where}: {error['msg']}"
    if error["type"] == "string_pattern_mismatch" and len(loc) >= 3 and loc[2] == "links":
        message = f'{where}: a link must look like "node_id.output_name"'
        return GraphError(
            code=ErrorCode.INVALID_LINK,
            message=message,
            node_id=node_id,
            input=input_name,
            value=error.get("input"),
        )
    value = error.get("input")
    return GraphError(
        code=ErrorCode.INVALID_GRAPH,
        message=message,
        node_id=node_id,
        input=input_name,
        value=value if _is_small_json(value) else None,
    )


def _is_small_json(value: Any) -> bool:
    try:
        return len(json.dumps(value)) <= 200
    except (TypeError, ValueError):
        return False
