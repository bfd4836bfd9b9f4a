"""A foreign web page cannot drive the server; the token guards every route when set."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from engine.config import Paths
from server.cli import serve
from server.settings import ServerSettings, is_loopback
from tests.server.harness import API, RunningServer, graph

EVIL = "http://evil.example"


def test_cross_origin_websocket_and_post_are_rejected(server: RunningServer) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            for origin in (EVIL, "null", "http://127.0.0.1:1", "https://" + server.url[7:]):
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    async with http.ws_connect(f"{server.url}/ws", origin=origin):
                        pass
                assert refused.value.status == 403, origin
                async with http.post(
                    f"{server.url}{API}/jobs", json={"graph": graph()}, headers={"Origin": origin}
                ) as response:
                    assert response.status == 403, origin
                    assert (await response.json())["error"] == "cross_origin"
            async with http.delete(f"{server.url}{API}/queue", headers={"Origin": EVIL}) as r:
                assert r.status == 403
            async with http.get(f"{server.url}{API}/jobs") as response:
                assert (await response.json())["total"] == 0  # nothing was queued
            # Same-origin pages and clients that send no Origin are fine.
            async with http.ws_connect(f"{server.url}/ws", origin=server.url) as ws:
                assert (await ws.receive_json(timeout=10))["type"] == "hello"
            localhost = server.url.replace("127.0.0.1", "localhost")
            async with http.post(
                f"{server.url}{API}/jobs",
                json={"graph": graph()},
                headers={"Origin": localhost, "Host": localhost[7:]},
            ) as response:
                assert response.status == 201
            async with http.post(f"{server.url}{API}/jobs", json={"graph": graph()}) as response:
                assert response.status == 201

    asyncio.run(scenario())


def test_a_foreign_host_name_is_rejected_against_dns_rebinding(server: RunningServer) -> None:
    async def scenario() -> None:
        port = server.url.rsplit(":", 1)[1]
        async with aiohttp.ClientSession() as http:
            headers = {"Host": f"evil.example:{port}", "Origin": f"{EVIL}:{port}"}
            async with http.post(
                f"{server.url}{API}/jobs", json={"graph": graph()}, headers=headers
            ) as response:
                assert response.status == 403
                assert (await response.json())["error"] == "bad_host"
            async with http.get(
                f"{server.url}{API}/jobs", headers={"Host": f"evil.example:{port}"}
            ) as response:
                assert response.status == 403

    asyncio.run(scenario())


def test_the_token_is_required_on_every_route_when_set(start: Callable[..., RunningServer]) -> None:
    server = start(ServerSettings(token="s3cret-0123456789ab"))
    good = {"Authorization": "Bearer s3cret-0123456789ab"}

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            for method, path in [
                ("GET", f"{API}/jobs"),
                ("GET", f"{API}/nodes"),
                ("GET", f"{API}/openapi.json"),
                ("GET", f"{API}/view?filename=x.png"),
                ("POST", f"{API}/jobs"),
                ("DELETE", f"{API}/queue"),
                ("GET", "/nowhere"),
            ]:
                for headers in (
                    {},
                    {"Authorization": "Bearer wrong"},
                    {"Authorization": "s3cret-0123456789ab"},
                ):
                    async with http.request(method, server.url + path, headers=headers) as r:
                        assert r.status == 401, (method, path, headers)
                        assert r.headers["WWW-Authenticate"] == "Bearer"
            async with http.get(f"{server.url}{API}/jobs", headers=good) as response:
                assert response.status == 200
            async with http.get(f"{server.url}{API}/jobs?token=s3cret-0123456789ab") as response:
                assert response.status == 200  # GET may carry it in the query (img tags)
            async with http.post(
                f"{server.url}{API}/jobs?token=s3cret-0123456789ab", json={}
            ) as response:
                assert response.status == 401  # state changes need the header
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                async with http.ws_connect(f"{server.url}/ws"):
                    pass
            assert refused.value.status == 401
            async with http.ws_connect(f"{server.url}/ws", headers=good) as ws:
                assert (await ws.receive_json(timeout=10))["type"] == "hello"
            async with http.ws_connect(f"{server.url}/ws?token=s3cret-0123456789ab") as ws:
                assert (await ws.receive_json(timeout=10))["type"] == "hello"

    asyncio.run(scenario())


def test_oversized_json_bodies_are_refused(start: Callable[..., RunningServer]) -> None:
    server = start(ServerSettings(max_json_bytes=2000))

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            big = {"graph": {"nodes": {"a": {"type": "Constant", "inputs": {"x": "y" * 5000}}}}}
            async with http.post(f"{server.url}{API}/jobs", json=big) as response:
                assert response.status == 413
                assert (await response.json())["error"] == "too_large"

    asyncio.run(scenario())


def test_serve_refuses_a_public_address_without_a_token(tmp_path: Path, capsys) -> None:
    args = argparse.Namespace(host="0.0.0.0", port=0, token=None)
    paths = Paths.resolve(models=tmp_path, input=tmp_path, output=tmp_path)
    assert serve(args, paths) == 2
    assert "refusing to listen on 0.0.0.0 without --token" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing was started
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")
    assert not is_loopback("example.com")
