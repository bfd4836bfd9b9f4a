"""The editor's routes: its page and bundle at /, and the example graphs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import aiohttp

from server.api_editor import EDITOR_DIR, GRAPHS_DIR
from server.settings import ServerSettings
from tests.server.harness import API, RunningServer


async def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers) as response:
            return response.status, dict(response.headers), await response.read()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    return asyncio.run(fetch(url, headers))


def test_example_graphs_are_listed_and_served(server: RunningServer) -> None:
    status, _, body = get(f"{server.url}{API}/graphs")
    assert status == 200
    listed = {g["name"]: g for g in json.loads(body)["graphs"]}
    assert set(listed) == {p.stem for p in GRAPHS_DIR.glob("*.json")}
    txt2img = json.loads((GRAPHS_DIR / "txt2img.json").read_text())
    assert listed["txt2img"]["nodes"] == len(txt2img["nodes"])
    status, _, body = get(f"{server.url}{API}/graphs/txt2img")
    assert status == 200 and json.loads(body) == txt2img


def test_bad_or_unknown_graph_names_get_clear_errors(server: RunningServer) -> None:
    status, _, body = get(f"{server.url}{API}/graphs/nope")
    assert status == 404 and json.loads(body)["error"] == "not_found"
    for name in ("..%2Fpyproject", "a.b", "%00"):
        status, _, body = get(f"{server.url}{API}/graphs/{name}")
        assert status in (400, 404), name
        assert "error" in json.loads(body)


def test_the_page_and_its_assets_are_served_and_nothing_else(server: RunningServer) -> None:
    status, headers, body = get(f"{server.url}/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert body == (EDITOR_DIR / "index.html").read_bytes()
    asset = next((EDITOR_DIR / "assets").glob("*.js"))
    status, headers, body = get(f"{server.url}/assets/{asset.name}")
    assert status == 200 and body == asset.read_bytes()
    assert headers["Content-Type"].startswith("text/javascript")
    assert "immutable" in headers["Cache-Control"]
    for name in ("..%2F..%2Fpyproject.toml", ".hidden.js", "missing.js", "x.py"):
        status, _, body = get(f"{server.url}/assets/{name}")
        assert status == 404, name
        assert json.loads(body)["error"] == "not_found"


def test_with_a_token_the_page_loads_but_the_api_needs_it(
    start: Callable[..., RunningServer],
) -> None:
    server = start(ServerSettings(token="s3cret-0123456789ab"))
    assert get(f"{server.url}/")[0] == 200
    asset = next((EDITOR_DIR / "assets").glob("*.js"))
    assert get(f"{server.url}/assets/{asset.name}")[0] == 200
    assert get(f"{server.url}{API}/graphs")[0] == 401
    assert get(f"{server.url}{API}/nodes")[0] == 401
    ok = get(f"{server.url}{API}/nodes", {"Authorization": "Bearer s3cret-0123456789ab"})
    assert ok[0] == 200 and "widens_to" in json.loads(ok[2])["types"]["INT"]
