"""Jobs over real HTTP and a real websocket: events, outputs, caching, validation, cancellation."""

from __future__ import annotations

import asyncio
import io
import time

import aiohttp
from PIL import Image

from tests.server.conftest import gate
from tests.server.harness import API, Client, RunningServer, gate_graph, graph, post_job


def test_job_events_arrive_in_order_and_outputs_download(server: RunningServer) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{server.url}/ws?client_id=alice") as ws:
                client = Client(ws)
                hello = await client.next()
                assert hello == {"type": "hello", "data": {"client_id": "alice", "protocol": 1}}
                job = await post_job(
                    http, server.url, {"graph": graph(value=7, steps=3), "client_id": "alice"}
                )
                assert job["status"] == "pending" and job["position"] == 0
                done = await client.until_terminal(job["job_id"])
                assert done["type"] == "job_finished"
                events = client.job_events(job["job_id"])
                assert [e["data"]["seq"] for e in events] == list(range(1, len(events) + 1))
                kinds = [(e["type"], e["data"].get("node_id")) for e in events]
                assert kinds == [
                    ("job_queued", None),
                    ("job_started", None),
                    ("nodes_cached", None),
                    ("node_started", "a"),
                    ("node_finished", "a"),
                    ("node_started", "slow"),
                    *[("progress", "slow")] * 4,
                    ("node_finished", "slow"),
                    ("node_started", "out"),
                    ("node_finished", "out"),
                    ("job_finished", None),
                ]
                progress = [e["data"] for e in events if e["type"] == "progress"]
                assert [(p["value"], p["max"]) for p in progress] == [
                    (0, 3),
                    (1, 3),
                    (2, 3),
                    (3, 3),
                ]
                image = done["data"]["outputs"]["out"]["images"][0]
                assert image["filename"] == "test_10.png" and image["subfolder"] == "tests"
                async with http.get(server.url + image["url"]) as response:
                    assert response.status == 200
                    assert response.headers["Content-Type"] == "image/png"
                    picture = Image.open(io.BytesIO(await response.read()))
                    assert picture.getpixel((0, 0)) == (10, 0, 0)
                async with http.get(f"{server.url}{API}/jobs/{job['job_id']}") as response:
                    stored = await response.json()
                assert stored["status"] == "finished"
                assert stored["executed"] == ["a", "slow", "out"]
                assert stored["outputs"]["out"]["images"][0]["url"] == image["url"]
                assert stored["graph"]["nodes"]["a"]["inputs"] == {"value": 7}
                assert stored["last_seq"] == events[-1]["data"]["seq"]
                async with http.get(f"{server.url}{API}/jobs/{job['job_id']}/events") as response:
                    log = await response.json()
                assert log["events"] == events

    asyncio.run(scenario())


def test_identical_resubmission_is_served_from_the_cache(server: RunningServer) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{server.url}/ws?client_id=bob") as ws:
                client = Client(ws)
                body = {"graph": graph(value=3), "client_id": "bob"}
                first = await post_job(http, server.url, body)
                await client.until_terminal(first["job_id"])
                second = await post_job(http, server.url, body)
                done = await client.until_terminal(second["job_id"])
                events = client.job_events(second["job_id"])
                assert done["type"] == "job_finished"
                assert done["data"]["executed"] == []
                cached = next(e for e in events if e["type"] == "nodes_cached")
                assert set(cached["data"]["nodes"]) == {"a", "slow", "out"}
                assert not [e for e in events if e["type"] in ("node_started", "progress")]
                # The output node's UI result is still reported, marked cached.
                shown = [e["data"] for e in events if e["type"] == "node_finished"]
                assert [(s["node_id"], s["cached"]) for s in shown] == [("out", True)]
                assert shown[0]["output"]["images"][0]["filename"] == "test_6.png"

    asyncio.run(scenario())


def test_invalid_graph_gives_400_with_every_error_and_queues_nothing(
    server: RunningServer,
) -> None:
    async def scenario() -> None:
        bad = {
            "nodes": {
                "a": {"type": "Constant", "inputs": {"value": 5000}},
                "b": {"type": "NoSuchNode"},
                "out": {"type": "ShowInt", "links": {"value": "ghost.value"}},
            }
        }
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.url}{API}/jobs", json={"graph": bad}) as response:
                assert response.status == 400
                body = await response.json()
            assert body["error"] == "invalid_graph"
            found = {(e["code"], e["node_id"], e["input"]) for e in body["errors"]}
            assert ("value_out_of_range", "a", "value") in found
            assert ("unknown_node_type", "b", None) in found
            assert ("link_to_missing_node", "out", "value") in found
            out_of_range = next(e for e in body["errors"] if e["code"] == "value_out_of_range")
            assert out_of_range["value"] == 5000 and out_of_range["message"]
            async with http.post(f"{server.url}{API}/jobs", json={"graph": []}) as response:
                assert response.status == 400
                assert (await response.json())["errors"][0]["code"] == "invalid_graph"
            async with http.post(
                f"{server.url}{API}/jobs",
                data=b"{not json",
                headers={"Content-Type": "application/json"},
            ) as response:
                assert response.status == 400
                assert (await response.json())["error"] == "bad_request"
            async with http.get(f"{server.url}{API}/jobs") as response:
                assert (await response.json())["total"] == 0
            async with http.get(f"{server.url}{API}/queue") as response:
                assert await response.json() == {"running": None, "pending": []}

    asyncio.run(scenario())


def test_interrupt_by_id_stops_that_job_within_a_step_and_the_next_reuses_the_cache(
    server: RunningServer,
) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{server.url}/ws?client_id=carol") as ws:
                client = Client(ws)
                long_job = await post_job(
                    http,
                    server.url,
                    {"graph": graph(value=1, steps=1000, delay=0.05), "client_id": "carol"},
                )
                next_job = await post_job(
                    http,
                    server.url,
                    {"graph": graph(value=1, steps=2, image=False), "client_id": "carol"},
                )
                await client.until(lambda m: m["type"] == "progress" and m["data"]["value"] >= 2)
                async with http.post(f"{server.url}{API}/jobs/{long_job['job_id']}/cancel") as r:
                    assert r.status == 202
                    assert await r.json() == {
                        "job_id": long_job["job_id"],
                        "outcome": "interrupting",
                    }
                    interrupted_at = time.time()
                stopped = await client.until_terminal(long_job["job_id"])
                assert stopped["type"] == "job_interrupted"
                assert stopped["data"]["node_id"] == "slow"
                assert stopped["data"]["reason"] == "requested"
                assert stopped["data"]["executed"] == ["a"]
                # SlowSteps checks the token at every step: no step was reported after the
                # interrupt was accepted, and it stopped within one step's delay.
                steps = [
                    e for e in client.job_events(long_job["job_id"]) if e["type"] == "progress"
                ]
                assert all(e["data"]["time"] < interrupted_at for e in steps)
                assert stopped["data"]["time"] - interrupted_at < 0.05 + 0.5
                done = await client.until_terminal(next_job["job_id"])
                assert done["type"] == "job_finished"
                cached = next(
                    e for e in client.job_events(next_job["job_id"]) if e["type"] == "nodes_cached"
                )
                assert cached["data"]["nodes"] == ["a"]
                assert done["data"]["executed"] == ["slow", "out"]
                async with http.get(f"{server.url}{API}/jobs/{long_job['job_id']}") as response:
                    stored = await response.json()
                assert stored["status"] == "interrupted"
                assert stored["interrupted"] == {"node_id": "slow", "reason": "requested"}
                # Interrupting a finished job is a conflict; an unknown id is 404.
                async with http.post(f"{server.url}{API}/jobs/{next_job['job_id']}/cancel") as r:
                    assert r.status == 409
                async with http.post(f"{server.url}{API}/jobs/{'0' * 32}/cancel") as r:
                    assert r.status == 404

    asyncio.run(scenario())


def test_cancel_front_and_clear_act_on_the_pending_job_named(server: RunningServer) -> None:
    opened, reached = gate("hold")

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{server.url}/ws?client_id=dave") as ws:
                client = Client(ws)

                async def queue(body: dict) -> str:
                    return (await post_job(http, server.url, {**body, "client_id": "dave"}))[
                        "job_id"
                    ]

                running = await queue({"graph": gate_graph("hold")})
                await asyncio.to_thread(reached.wait, 10)
                first = await queue({"graph": graph(value=11, image=False)})
                second = await queue({"graph": graph(value=12, image=False)})
                third = await queue({"graph": graph(value=13, image=False)})
                urgent = await queue({"graph": graph(value=14, image=False), "front": True})
                async with http.post(f"{server.url}{API}/jobs/{third}/front") as response:
                    assert response.status == 200
                async with http.get(f"{server.url}{API}/queue") as response:
                    view = await response.json()
                assert view["running"]["job_id"] == running
                assert [j["job_id"] for j in view["pending"]] == [third, urgent, first, second]
                async with http.post(f"{server.url}{API}/jobs/{first}/cancel") as response:
                    assert response.status == 200
                    assert (await response.json())["outcome"] == "cancelled"
                async with http.post(f"{server.url}{API}/jobs/{first}/cancel") as response:
                    assert response.status == 200  # cancelling twice is harmless
                cancelled = await client.until_terminal(first)
                assert cancelled["type"] == "job_cancelled"
                async with http.delete(f"{server.url}{API}/queue") as response:
                    assert (await response.json())["cancelled"] == [third, urgent, second]
                async with http.post(f"{server.url}{API}/jobs/{second}/front") as response:
                    assert response.status == 409
                opened.set()
                finished = await client.until_terminal(running)
                assert finished["type"] == "job_finished"
                async with http.get(
                    f"{server.url}{API}/jobs", params={"status": "cancelled"}
                ) as response:
                    page = await response.json()
                assert {j["job_id"] for j in page["jobs"]} == {first, second, third, urgent}

    asyncio.run(scenario())


def test_job_list_pages_and_filters(server: RunningServer) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{server.url}/ws?client_id=erin") as ws:
                client = Client(ws)
                ids = []
                for value in range(5):
                    body = {"graph": graph(value=value, image=False), "client_id": "erin"}
                    ids.append((await post_job(http, server.url, body))["job_id"])
                for job_id in ids:
                    await client.until_terminal(job_id)
            bad = {
                "graph": {
                    "nodes": {
                        "x": {"type": "Fail", "links": {"x": "a.value"}},
                        "a": {"type": "Constant"},
                        "o": {"type": "ShowInt", "links": {"value": "x.value"}},
                    }
                }
            }
            failed = (await post_job(http, server.url, bad))["job_id"]
            seen: list[str] = []
            for offset in (0, 2, 4):
                async with http.get(
                    f"{server.url}{API}/jobs",
                    params={"limit": "2", "offset": str(offset), "client_id": "erin"},
                ) as response:
                    page = await response.json()
                assert page["total"] == 5 and page["limit"] == 2
                assert page["has_more"] == (offset < 4)
                seen += [j["job_id"] for j in page["jobs"]]
            assert seen == ids[::-1]  # newest first, disjoint pages
            async with http.ws_connect(f"{server.url}/ws") as ws:
                await ws.send_json({"type": "subscribe", "data": {"job_id": failed}})
                await Client(ws).until_terminal(failed)
            async with http.get(f"{server.url}{API}/jobs/{failed}") as response:
                job = await response.json()
            assert job["status"] == "failed"
            assert job["error"]["code"] == "node_failed"
            assert job["error"]["node_id"] == "x" and job["error"]["message"] == "boom"
            assert job["error"]["exception_type"] == "RuntimeError"
            async with http.get(
                f"{server.url}{API}/jobs", params={"status": "failed,interrupted"}
            ) as response:
                assert [j["job_id"] for j in (await response.json())["jobs"]] == [failed]
            for params in ({"limit": "1000"}, {"status": "done"}, {"offset": "-1"}, {"x": "1"}):
                async with http.get(f"{server.url}{API}/jobs", params=params) as response:
                    assert response.status == 400, params
                    assert (await response.json())["error"] == "bad_request"

    asyncio.run(scenario())


def test_a_graph_that_stops_validating_while_queued_fails_with_its_errors(
    server: RunningServer,
) -> None:
    opened, reached = gate("hold-validation")
    (server.paths.input / "pick.png").write_bytes(b"x")

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{server.url}/ws?client_id=val") as ws:
                client = Client(ws)
                await post_job(
                    http, server.url, {"graph": gate_graph("hold-validation"), "client_id": "val"}
                )
                await asyncio.to_thread(reached.wait, 10)
                picked = {
                    "nodes": {
                        "p": {"type": "PickInput", "inputs": {"name": "pick.png"}},
                        "out": {"type": "ShowInt", "links": {"value": "p.value"}},
                    }
                }
                job = await post_job(http, server.url, {"graph": picked, "client_id": "val"})
                (server.paths.input / "pick.png").unlink()
                opened.set()
                failed = await client.until_terminal(job["job_id"])
        assert failed["type"] == "job_failed"
        error = failed["data"]["error"]
        assert error["code"] == "invalid_graph"
        assert [(e["code"], e["node_id"], e["input"]) for e in error["errors"]] == [
            ("value_not_in_choices", "p", "name")
        ]

    asyncio.run(scenario())
