"""Catalog, schema, system stats, free memory, and JSON errors for unknown routes."""

from __future__ import annotations

import asyncio

import aiohttp

from engine.graph import graph_json_schema
from tests.server.harness import API, Client, RunningServer, graph, submit


def test_catalog_and_graph_schema(server: RunningServer) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}{API}/nodes") as response:
                catalog = await response.json()
            assert {"Constant", "SlowSteps", "SaveTestImage"} <= set(catalog["nodes"])
            assert catalog["nodes"]["Constant"]["inputs"][0]["name"] == "value"
            async with http.get(f"{server.url}{API}/schema/graph") as response:
                assert await response.json() == graph_json_schema()

    asyncio.run(scenario())


def test_system_stats_and_free_memory(server: RunningServer) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{server.url}/ws?client_id=lee") as ws:
                client = Client(ws)
                body = {"graph": graph(value=1, image=False), "client_id": "lee"}
                job = await submit(http, server.url, body)
                await client.until_terminal(job)
                async with http.get(f"{server.url}{API}/system") as response:
                    stats = await response.json()
                assert stats["versions"]["python"] and stats["versions"]["aiohttp"]
                assert stats["devices"][0]["type"] == "cpu"
                assert stats["cache"]["entries"] == 3
                assert stats["queue"] == {"pending": 0, "running": 0}
                async with http.post(
                    f"{server.url}{API}/free", json={"unload_models": True, "clear_cache": True}
                ) as response:
                    freed = await response.json()
                assert freed["dropped_entries"] == 3 and freed["offloaded_models"] == 0
                async with http.post(f"{server.url}{API}/free") as response:
                    assert response.status == 200  # the body is optional
                async with http.post(f"{server.url}{API}/free", json={"x": 1}) as response:
                    assert response.status == 400
                # With the cache dropped, the same graph runs again.
                again = await submit(http, server.url, body)
                done = await client.until_terminal(again)
                assert done["data"]["executed"] == ["a", "slow", "out"]

    asyncio.run(scenario())


def test_unknown_routes_and_methods_answer_json(server: RunningServer) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/nope") as response:
                assert response.status == 404
                assert (await response.json())["error"] == "not_found"
            async with http.put(f"{server.url}{API}/jobs") as response:
                assert response.status == 405
                assert "POST" in response.headers["Allow"]
                assert (await response.json())["error"] == "method_not_allowed"
            async with http.get(f"{server.url}{API}/jobs/{'a' * 32}") as response:
                assert response.status == 404

    asyncio.run(scenario())
