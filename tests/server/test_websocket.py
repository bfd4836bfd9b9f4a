"""Websocket routing, isolation, replay after reconnect, and binary preview frames."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest

from server.settings import ServerSettings
from server.ws import CLOSE_TOO_SLOW
from tests.server.conftest import gate
from tests.server.harness import API, Client, RunningServer, gate_graph, graph, submit


def seqs(events: list[dict]) -> list[int]:
    return [e["data"]["seq"] for e in events]


def test_clients_only_see_their_own_jobs_and_anonymous_jobs_only_reach_subscribers(
    server: RunningServer,
) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with (
                http.ws_connect(f"{server.url}/ws?client_id=one") as ws_one,
                http.ws_connect(f"{server.url}/ws?client_id=two") as ws_two,
                http.ws_connect(f"{server.url}/ws") as ws_watcher,
                http.ws_connect(f"{server.url}/ws") as ws_bystander,
            ):
                one, two, watcher, bystander = map(
                    Client, (ws_one, ws_two, ws_watcher, ws_bystander)
                )
                opened, reached = gate("anonymous")
                # The anonymous job is held at a gate so the watcher can subscribe before it ends.
                anonymous = await submit(http, server.url, {"graph": gate_graph("anonymous")})
                await ws_watcher.send_json({"type": "subscribe", "data": {"job_id": anonymous}})
                subscribed = await watcher.until(lambda m: m["type"] == "subscribed")
                assert subscribed["data"]["job_id"] == anonymous
                job_one = await submit(
                    http, server.url, {"graph": graph(value=1), "client_id": "one"}
                )
                job_two = await submit(
                    http, server.url, {"graph": graph(value=2), "client_id": "two"}
                )
                await asyncio.to_thread(reached.wait, 10)
                opened.set()
                await watcher.until_terminal(anonymous)
                await one.until_terminal(job_one)
                await two.until_terminal(job_two)
                for client in (one, two, watcher, bystander):
                    await client.sync()
                assert {e["data"]["job_id"] for e in one.job_events()} == {job_one}
                assert {e["data"]["job_id"] for e in two.job_events()} == {job_two}
                assert {e["data"]["job_id"] for e in watcher.job_events()} == {anonymous}
                assert bystander.job_events() == []
                # Everyone gets queue counts, which name no job.
                assert any(m["type"] == "queue" for m in bystander.messages)
                assert all(
                    set(m["data"]) == {"pending", "running"}
                    for m in bystander.messages
                    if m["type"] == "queue"
                )
                # The watcher got the anonymous job's whole log, each event once, in order.
                assert seqs(watcher.job_events()) == list(range(1, len(watcher.job_events()) + 1))

    asyncio.run(scenario())


def test_reconnect_with_a_cursor_replays_exactly_the_missed_events(server: RunningServer) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{server.url}/ws?client_id=frank") as ws:
                client = Client(ws)
                job = await submit(
                    http,
                    server.url,
                    {"graph": graph(value=5, steps=40, delay=0.01), "client_id": "frank"},
                )
                await client.until(lambda m: m["data"].get("seq", 0) >= 6)
                before = client.job_events(job)
            last_seen = before[-1]["data"]["seq"]
            # Reconnect while the job is still running, resuming after the last event seen.
            url = f"{server.url}/ws?client_id=frank&resume={job}:{last_seen}"
            async with http.ws_connect(url) as ws:
                client = Client(ws)
                await client.until_terminal(job)
                await client.sync()
                after = client.job_events(job)
            async with http.get(f"{server.url}{API}/jobs/{job}/events") as response:
                log = (await response.json())["events"]
            assert seqs(before) == list(range(1, last_seen + 1))
            assert seqs(after) == list(range(last_seen + 1, len(log) + 1))
            assert before + after == log
            # A subscribe message with a cursor, for a finished job: the tail, once.
            async with http.ws_connect(f"{server.url}/ws") as ws:
                client = Client(ws)
                await ws.send_json({"type": "subscribe", "data": {"job_id": job, "after_seq": 10}})
                await client.until_terminal(job)
                await ws.send_json({"type": "subscribe", "data": {"job_id": job, "after_seq": 3}})
                await client.sync()
                replayed = client.job_events(job)
            # The second subscribe only filled in what this connection had not been sent.
            assert seqs(replayed) == [*range(11, len(log) + 1), *range(4, 11)]

    asyncio.run(scenario())


def test_subscribe_message_resumes_a_running_job_without_gaps_or_repeats(
    server: RunningServer,
) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            job = await submit(
                http,
                server.url,
                {"graph": graph(value=8, steps=60, delay=0.005), "client_id": "gus"},
            )
            # Connected as the job's client: live events start flowing at once; the subscribe
            # message then asks for everything after seq 2, racing with live delivery.
            async with http.ws_connect(f"{server.url}/ws?client_id=gus") as ws:
                client = Client(ws)
                await ws.send_json({"type": "subscribe", "data": {"job_id": job, "after_seq": 2}})
                await client.until_terminal(job)
                await client.sync()
            async with http.get(f"{server.url}{API}/jobs/{job}/events") as response:
                last = (await response.json())["last_seq"]
            got = seqs(client.job_events(job))
            assert len(got) == len(set(got))  # nothing twice
            assert set(range(3, last + 1)) <= set(got)  # nothing after the cursor missing
            # Events up to the cursor only arrive live, before the subscribe was answered.
            answered = next(i for i, m in enumerate(client.messages) if m["type"] == "subscribed")
            after = [m for m in client.messages[answered:] if "seq" in m["data"]]
            assert all(seq > 2 for seq in seqs(after))

    asyncio.run(scenario())


def test_previews_are_binary_frames_after_their_progress_message(server: RunningServer) -> None:
    async def scenario() -> None:
        preview_graph = {
            "nodes": {
                "a": {"type": "Constant", "inputs": {"value": 1}},
                "p": {"type": "PreviewSteps", "inputs": {"steps": 3}, "links": {"x": "a.value"}},
                "out": {"type": "ShowInt", "links": {"value": "p.value"}},
            }
        }
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{server.url}/ws?client_id=hal") as ws:
                order: list[str] = []
                job = await submit(http, server.url, {"graph": preview_graph, "client_id": "hal"})
                previews = []
                while True:
                    message = await ws.receive(timeout=20)
                    if message.type == aiohttp.WSMsgType.BINARY:
                        from server.messages import parse_preview_frame

                        header, image = parse_preview_frame(message.data)
                        previews.append((header, image))
                        order.append(f"preview:{header['seq']}")
                        continue
                    data = message.json()
                    if data["type"] == "progress":
                        assert data["data"]["preview"] is True
                        order.append(f"progress:{data['data']['seq']}")
                    if data["type"] == "job_finished":
                        break
        assert len(previews) == 3
        for header, image in previews:
            assert header["job_id"] == job and header["node_id"] == "p"
            assert header["mime"] == "image/jpeg" and image[:3] == b"\xff\xd8\xff"
        # Each preview follows the progress message with the same seq.
        assert order == [
            x for s in [h["seq"] for h, _ in previews] for x in (f"progress:{s}", f"preview:{s}")
        ]

    asyncio.run(scenario())


def test_bad_client_messages_get_errors_and_the_connection_stays_open(
    server: RunningServer,
) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{server.url}/ws") as ws:
                client = Client(ws)
                await ws.send_str("not json")
                error = await client.until(lambda m: m["type"] == "error")
                assert error["data"]["code"] == "bad_message"
                await ws.send_json({"type": "subscribe", "data": {"job_id": "../../etc"}})
                assert (await client.until(lambda m: m["type"] == "error"))["data"]["code"] == (
                    "bad_message"
                )
                await ws.send_json({"type": "subscribe", "data": {"job_id": "f" * 32}})
                error = await client.until(lambda m: m["type"] == "error")
                assert error["data"] == {
                    "code": "unknown_job",
                    "message": f"no job {'f' * 32}",
                    "job_id": "f" * 32,
                }
                await client.sync()
            for query in ("client_id=a%20b", f"resume={'f' * 32}", "resume=x:1"):
                async with http.get(f"{server.url}/ws?{query}") as response:
                    assert response.status == 400, query

    asyncio.run(scenario())


def test_a_client_that_falls_behind_is_closed_and_can_resume(
    start: Callable[..., RunningServer],
) -> None:
    # One live frame of backlog: a progress message with its preview (two frames) is too many.
    server = start(ServerSettings(ws_max_queued=1))
    preview_graph = {
        "nodes": {
            "a": {"type": "Constant", "inputs": {"value": 2}},
            "p": {"type": "PreviewSteps", "inputs": {"steps": 4}, "links": {"x": "a.value"}},
            "out": {"type": "ShowInt", "links": {"value": "p.value"}},
        }
    }

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{server.url}/ws?client_id=slow") as ws:
                client = Client(ws)
                job = await submit(http, server.url, {"graph": preview_graph, "client_id": "slow"})
                with pytest.raises(ConnectionError):
                    while True:
                        await client.next()
                assert ws.close_code == CLOSE_TOO_SLOW
                before = client.job_events(job)
            # Each reconnect resumes after the last event seen; live previews may overflow the
            # tiny backlog again, so keep resuming (a bounded number of times) until the end.
            seen, done = before, None
            for _ in range(50):
                cursor = seen[-1]["data"]["seq"] if seen else 0
                async with http.ws_connect(f"{server.url}/ws?resume={job}:{cursor}") as ws:
                    client = Client(ws)
                    try:
                        done = await client.until_terminal(job)
                    except ConnectionError:
                        assert ws.close_code == CLOSE_TOO_SLOW
                    seen = seen + client.job_events(job)
                if done is not None:
                    break
            assert done is not None and done["type"] == "job_finished"
            assert seqs(seen) == list(range(1, done["data"]["seq"] + 1))

    asyncio.run(scenario())
