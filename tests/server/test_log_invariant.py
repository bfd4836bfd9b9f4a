"""The event log's invariant: a client is only ever sent events the store holds, and every stored
job ends with exactly one terminal event (or is pending or running, which a restart resumes or
fails). Checked against the SQLite file itself, reopened after the server has gone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from engine.config import Paths
from engine.executor import Executor
from server.backends.base import JobRun, WorkerLost
from server.backends.local import InProcessBackend
from server.store import JobRow, JobStore, database_path
from tests.server.harness import (
    API,
    TERMINAL,
    Client,
    RunningServer,
    graph,
    start_server,
    submit,
)
from tests.server.nodes import server_registry


def stored_log(output: Path, job_id: str) -> tuple[JobRow, list[dict[str, Any]]]:
    """A job's row and its whole event log, read from the database file with no server running."""
    store = JobStore(database_path(output))
    try:
        row = store.get(job_id)
        assert row is not None
        return row, [json.loads(e.message) for e in store.events(job_id, 0, None)]
    finally:
        store.close()


def assert_log_invariant(stored: list[dict[str, Any]], delivered: list[dict[str, Any]]) -> None:
    """Gap-free, one terminal event and only at the end, and every delivered event stored as sent."""
    assert [e["data"]["seq"] for e in stored] == list(range(1, len(stored) + 1))
    assert [e["type"] in TERMINAL for e in stored].count(True) == 1
    assert stored[-1]["type"] in TERMINAL
    by_seq = {e["data"]["seq"]: e for e in stored}
    for event in delivered:
        assert by_seq.get(event["data"]["seq"]) == event


async def read_pages(http: aiohttp.ClientSession, url: str, job_id: str) -> list[dict[str, Any]]:
    """A job's whole event log over HTTP, page by page (a page holds at most `limit` events)."""
    events: list[dict[str, Any]] = []
    while True:
        after = events[-1]["data"]["seq"] if events else 0
        async with http.get(f"{url}{API}/jobs/{job_id}/events?after_seq={after}") as response:
            page = await response.json()
        events += page["events"]
        if not page["events"] or events[-1]["data"]["seq"] >= page["last_seq"]:
            return events


async def until_closed(client: Client) -> None:
    """Read (and record) everything the server sends until it closes the websocket."""
    try:
        while True:
            await client.next()
    except ConnectionError:
        return


def test_a_log_longer_than_one_page_ends_with_its_terminal_event_only_when_read_to_the_end(
    server: RunningServer,
) -> None:
    # What the editor's restart test once saw: a finished job whose log, read with one GET,
    # ended with a progress event. The log was whole; one page holds 1000 events.
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{server.url}/ws?client_id=long") as ws:
                client = Client(ws)
                body = {"graph": graph(steps=1000, delay=0, image=False), "client_id": "long"}
                job_id = await submit(http, server.url, body)
                assert (await client.until_terminal(job_id))["type"] == "job_finished"
            async with http.get(f"{server.url}{API}/jobs/{job_id}/events") as response:
                first_page = await response.json()
            assert len(first_page["events"]) == 1000 < first_page["last_seq"]
            assert first_page["events"][-1]["type"] == "progress"
            whole = await read_pages(http, server.url, job_id)
        assert whole[:1000] == first_page["events"]
        assert whole == client.job_events(job_id)
        assert_log_invariant(whole, client.job_events(job_id))

    asyncio.run(scenario())


def test_a_shutdown_mid_job_stores_every_event_a_client_saw_and_one_terminal_event(
    start: Callable[..., RunningServer],
) -> None:
    server = start()
    state: dict[str, Any] = {}

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{server.url}/ws?client_id=stop") as ws:
                client = Client(ws)
                body = {"graph": graph(steps=1000, delay=0.01, image=False), "client_id": "stop"}
                job_id = await submit(http, server.url, body)
                pending = await submit(http, server.url, {"graph": graph(value=5, image=False)})
                for _ in range(5):
                    await client.until(lambda m: m["type"] == "progress")
                # Stop while progress events stream: some are in flight as the sockets close.
                stopping = asyncio.create_task(asyncio.to_thread(server.stop))
                await until_closed(client)
                await stopping
                state.update(job_id=job_id, pending=pending, seen=client.job_events(job_id))

    asyncio.run(scenario())
    row, stored = stored_log(server.paths.output, state["job_id"])
    assert row.status == "interrupted" and row.interrupted == {
        "node_id": "slow",
        "reason": "server_shutdown",
    }
    assert stored[-1]["type"] == "job_interrupted"
    assert len(state["seen"]) > 5
    assert_log_invariant(stored, state["seen"])
    # The job queued behind it is stored as pending, with only its first event: a restart runs it.
    pending, log = stored_log(server.paths.output, state["pending"])
    assert pending.status == "pending" and [e["type"] for e in log] == ["job_queued"]


class LosesItsWorkerAfterTheLastEvent(InProcessBackend):
    """A backend whose worker dies after the job's terminal event but before the run returns, as a
    Ray worker killed between sending its last event and its end record does."""

    async def run(self, worker_id: str, run: JobRun) -> None:
        await super().run(worker_id, run)
        raise WorkerLost(worker_id, "its stream ended without a result")


def test_a_worker_lost_after_the_terminal_event_leaves_the_outcome_alone(tmp_path: Path) -> None:
    def backend(paths: Paths) -> InProcessBackend:
        return LosesItsWorkerAfterTheLastEvent(Executor(server_registry(), paths=paths))

    server = start_server(tmp_path, backend=backend)
    jobs: dict[str, str] = {}
    try:

        async def scenario() -> None:
            async with aiohttp.ClientSession() as http:
                async with http.ws_connect(f"{server.url}/ws?client_id=late") as ws:
                    client = Client(ws)
                    for name, retry in (("plain", False), ("retry", True), ("after", False)):
                        body = {
                            "graph": graph(value=len(name), image=False),
                            "client_id": "late",
                            "retry_on_worker_lost": retry,
                        }
                        jobs[name] = await submit(http, server.url, body)
                        await client.until_terminal(jobs[name])
                    # Anything sent after a terminal event would have arrived by now.
                    await asyncio.sleep(0.3)
                    await client.sync()
                    for job_id in jobs.values():
                        delivered = client.job_events(job_id)
                        assert delivered[-1]["type"] == "job_finished"
                        assert_log_invariant(await read_pages(http, server.url, job_id), delivered)
                        assert [e["type"] for e in delivered].count("job_started") == 1

        asyncio.run(scenario())
    finally:
        server.stop()
    for job_id in jobs.values():
        row, stored = stored_log(server.paths.output, job_id)
        assert row.status == "finished" and row.error is None
        assert_log_invariant(stored, [])
