"""Graph documents in other formats: a registered format recognises its documents and converts them.

The engine knows no foreign format itself (it must not import `nodes/`); a node module exposes
`DOCUMENT_FORMATS` and the registry collects them, so the CLI and the server accept whatever the
installed node packages can convert. Our own graph files pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from engine.documents import DocumentError, parse_json
from engine.errors import ErrorCode, GraphError, GraphValidationError

if TYPE_CHECKING:
    from engine.registry import Registry

NATIVE_FORMAT = "latentgraph"


def _same(error: GraphError) -> GraphError:
    return error


@dataclass(frozen=True)
class ConvertedGraph:
    """A document as our graph file, and how to blame errors on what the user wrote."""

    document: Any
    format: str = NATIVE_FORMAT
    # Maps a validation error about the converted graph back onto the source's node and input.
    blame: Callable[[GraphError], GraphError] = field(default=_same, repr=False)

    def blamed(self, exc: GraphValidationError) -> GraphValidationError:
        """The same errors, located in the source document."""
        return GraphValidationError([self.blame(e) for e in exc.errors])


@runtime_checkable
class DocumentFormat(Protocol):
    """A foreign graph format that can be converted into our graph file format."""

    name: str

    def detect(self, document: Any) -> bool:
        """Whether a decoded JSON document is in this format."""
        ...

    def convert(self, document: Any, registry: Registry) -> ConvertedGraph:
        """Our graph file for the document; raises GraphValidationError naming the source's nodes."""
        ...

    def read_file(self, data: bytes) -> Any | None:
        """The document inside a non-JSON file (a PNG's text chunks, say), or None."""
        ...


def convert_document(document: Any, registry: Registry) -> ConvertedGraph:
    """Our graph file for a document in any registered format (ours passes unchanged)."""
    nodes = document.get("nodes") if isinstance(document, dict) else None
    if isinstance(nodes, dict) and "class_type" not in nodes:
        return ConvertedGraph(document)  # ours: `nodes` is an object (ComfyUI's is a list)
    for fmt in registry.formats:
        if fmt.detect(document):
            return fmt.convert(document, registry)
    return ConvertedGraph(document)


def read_document(path: str | Path, registry: Registry) -> Any:
    """A graph document from a file: JSON, or a file a registered format can read (a PNG, say)."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise _invalid(f"cannot read {file}: {exc.strerror}") from None
    for fmt in registry.formats:
        found = fmt.read_file(data)
        if found is not None:
            return found
    try:
        return parse_json(data, str(file))
    except DocumentError as exc:
        raise _invalid(str(exc)) from None


def _invalid(message: str) -> GraphValidationError:
    return GraphValidationError([GraphError(code=ErrorCode.INVALID_GRAPH, message=message)])
