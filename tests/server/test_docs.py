"""The API documents match the code: the committed OpenAPI file and the websocket description."""

from __future__ import annotations

import asyncio
import json
import typing
from typing import Any

import aiohttp

from server.comfy.routes import comfy_paths
from server.connection_messages import ClientMessage, ServerMessage
from server.openapi_file import OPENAPI_FILE, render
from server.routes import ROUTES, api_description
from tests.server.harness import API, RunningServer

WEBSOCKET_DOC = OPENAPI_FILE.parent / "websocket.md"


def message_types(union: Any) -> set[str]:
    members = typing.get_args(typing.get_args(union)[0])
    types: set[str] = set()
    for member in members:
        if typing.get_args(member):  # a nested Annotated union (job messages)
            types |= message_types(member)
        else:
            types |= set(typing.get_args(member.model_fields["type"].annotation))
    return types


def test_committed_openapi_file_is_current() -> None:
    assert OPENAPI_FILE.read_text(encoding="utf-8") == render(), (
        "docs/api/openapi.json is out of date: run `python -m server.openapi_file`"
    )


def test_openapi_describes_every_route_and_every_reference_resolves() -> None:
    document = api_description()
    assert document["openapi"] == "3.1.0"
    described = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    assert described == {(r.method, r.path) for r in ROUTES}
    schemas = document["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(document):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, ref
    submit = document["paths"][f"{API}/jobs"]["post"]
    assert set(submit["responses"]) >= {"201", "400", "401", "403", "413"}


def test_websocket_doc_describes_every_message_type() -> None:
    text = WEBSOCKET_DOC.read_text(encoding="utf-8")
    every = message_types(ServerMessage) | message_types(ClientMessage)
    assert len(every) == 10 + 6 + 3
    for kind in every:
        assert f"| `{kind}` |" in text, f"websocket.md does not describe {kind}"


def test_the_server_serves_both_documents(server: RunningServer) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}{API}/openapi.json") as response:
                assert await response.json() == json.loads(OPENAPI_FILE.read_text())
            async with http.get(f"{server.url}{API}/docs/websocket") as response:
                assert response.content_type == "text/markdown"
                assert await response.text() == WEBSOCKET_DOC.read_text(encoding="utf-8")
            registered = {
                (r.method, r.resource.canonical)
                for r in server.app.router.routes()
                if r.method != "HEAD" and r.resource is not None
            }
            # Besides ours, the app serves ComfyUI's protocol (server/comfy), documented as ComfyUI's.
            assert registered == {(r.method, r.path) for r in ROUTES} | comfy_paths()

    asyncio.run(scenario())
