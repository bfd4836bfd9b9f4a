"""The browser editor: its static bundle at `/`, and the example graphs it offers one click away."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from engine.node import NodeSpec
from server.errors import ApiError
from server.payloads import json_response

EDITOR_DIR = Path(__file__).resolve().parent / "static" / "editor"


def _graphs_dir() -> Path:
    """Where the example graphs are: the wheel's copy (setup.py puts it in the package), else
    graphs/ of the checkout this package runs from (an editable install has no copy)."""
    packaged = Path(__file__).resolve().parent / "example_graphs"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "graphs"


GRAPHS_DIR = _graphs_dir()
_GRAPH_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ASSET_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_ASSET_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
}
# The page loads only its own scripts and styles and talks only to this server; images may be
# blob: URLs (sampler previews) or data: URLs (upload thumbnails).
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


class PortTypeInfo(BaseModel):
    """A port type as the editor sees it: what it is, its socket colour, what it may feed."""

    description: str
    primitive: bool
    color: str
    widens_to: list[str] = Field(default=[], description="Other input types it may feed.")


class NodeCatalog(BaseModel):
    """Every port type and node type, with current choices (model files, input images)."""

    version: int
    types: dict[str, PortTypeInfo]
    nodes: dict[str, NodeSpec]


class ExampleGraph(BaseModel):
    """One example graph shipped with Latentgraph."""

    name: str = Field(description="Pass it to GET /api/v1/graphs/{name}.")
    nodes: int = Field(description="How many nodes it has.")
    node_types: list[str] = Field(description="Its node types, in file order.")


class ExampleGraphList(BaseModel):
    """The example graphs, by name."""

    graphs: list[ExampleGraph]


async def list_graphs(request: web.Request) -> web.Response:
    """GET /api/v1/graphs: the example graphs, by name."""
    return json_response(ExampleGraphList(graphs=await asyncio.to_thread(_example_graphs)))


async def get_graph(request: web.Request) -> web.Response:
    """GET /api/v1/graphs/{name}: one example graph document."""
    name = request.match_info["name"]
    if not _GRAPH_NAME.fullmatch(name):
        raise ApiError(400, "bad_path", "a graph name is letters, digits, `_` and `-`")
    try:
        document = await asyncio.to_thread(_read_graph, GRAPHS_DIR / f"{name}.json")
    except (OSError, ValueError):
        raise ApiError(404, "not_found", f"no example graph {name!r}") from None
    return web.json_response(document)


async def editor_page(request: web.Request) -> web.StreamResponse:
    """GET /: the editor's page."""
    return _static(EDITOR_DIR / "index.html", "text/html")


async def editor_asset(request: web.Request) -> web.StreamResponse:
    """GET /assets/{name}: a file of the editor's bundle (content-hashed, so cached for good)."""
    name = request.match_info["name"]
    kind = _ASSET_TYPES.get(Path(name).suffix)
    if not _ASSET_NAME.fullmatch(name) or name.startswith(".") or kind is None:
        raise ApiError(404, "not_found", f"no editor asset {name!r}")
    response = _static(EDITOR_DIR / "assets" / name, kind)
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


def _static(path: Path, content_type: str) -> web.FileResponse:
    if not path.is_file():
        raise ApiError(
            404, "not_found", "the editor is not built here: run `make editor` in a checkout"
        )
    headers = {**_PAGE_HEADERS, "Content-Type": content_type}
    return web.FileResponse(path, headers=headers)


def _read_graph(path: Path) -> Any:
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or not isinstance(document.get("nodes"), dict):
        raise ValueError(f"{path.name} is not a graph document")
    return document


def _example_graphs() -> list[ExampleGraph]:
    found = []
    for path in sorted(GRAPHS_DIR.glob("*.json")) if GRAPHS_DIR.is_dir() else []:
        if not _GRAPH_NAME.fullmatch(path.stem):
            continue
        try:
            nodes = _read_graph(path)["nodes"]
        except (OSError, ValueError):
            continue  # a broken file is not offered
        types = [str(n.get("type")) for n in nodes.values() if isinstance(n, dict)]
        found.append(ExampleGraph(name=path.stem, nodes=len(nodes), node_types=types))
    return found
