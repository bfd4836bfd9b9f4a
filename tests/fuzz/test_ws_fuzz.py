"""Fuzzing the websocket protocol: any client message gets an answer or an error message, the
stream stays valid JSON, and the connection stays open."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.harness import RunningServer, start_server

JOB_ID = "0123456789abcdef0123456789abcdef"
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)
structured = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["subscribe", "unsubscribe", "ping", "pong", "hello"])
        | st.text(max_size=8),
        "data": st.fixed_dictionaries(
            {},
            optional={
                "job_id": st.sampled_from([JOB_ID, "", "zz"]) | st.text(max_size=40),
                "after_seq": st.integers(min_value=-(2**70), max_value=2**70) | json_values,
            },
        )
        | json_values,
    }
)
messages = (
    structured.map(json.dumps)
    | json_values.map(json.dumps)
    | st.text(max_size=60)
    | st.sampled_from(
        [
            '{"type": "ping", "data": {"x": "\\ud800"}}',
            '{"type": "ping", "data": ' + "[" * 3000 + "]" * 3000 + "}",
            '{"type": "ping", "data": {"n": ' + "9" * 5000 + "}}",
            '{"type": "ping", "type": "subscribe"}',
        ]
    )
)


class Connection:
    """One websocket to the server, driven from the test thread through its own loop."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.session: aiohttp.ClientSession = self.call(self._session())
        self.ws: aiohttp.ClientWebSocketResponse = self.call(self.session.ws_connect(f"{url}/ws"))
        self.marker = 0

    async def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def exchange(self, text: str) -> list[dict[str, Any]]:
        """Send `text`, then a ping; every frame up to its pong, parsed."""
        self.marker += 1
        return self.call(self._exchange(text, self.marker))

    async def _exchange(self, text: str, marker: int) -> list[dict[str, Any]]:
        await self.ws.send_str(text)
        await self.ws.send_json({"type": "ping", "data": {"marker": marker}})
        received = []
        while True:
            message = await self.ws.receive(timeout=20)
            assert message.type == aiohttp.WSMsgType.TEXT, (message.type, message.data, text[:200])
            data = json.loads(message.data)
            assert isinstance(data.get("type"), str) and "data" in data, data
            received.append(data)
            if data["type"] == "pong" and data["data"] == {"marker": marker}:
                return received

    def close(self) -> None:
        self.call(self.ws.close())
        self.call(self.session.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(Path(tmp_path_factory.mktemp("ws-fuzz")))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def connection(server: RunningServer) -> Iterator[Connection]:
    conn = Connection(server.url)
    yield conn
    conn.close()


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(text=messages)
def test_every_client_message_gets_answered_on_an_intact_stream(
    connection: Connection, text: str
) -> None:
    received = connection.exchange(text)
    for message in received[:-1]:
        if message["type"] == "error":
            assert message["data"]["code"] != "internal_error", (text[:200], message)


def test_the_server_still_answers_after_the_fuzzing(server: RunningServer) -> None:
    connection = Connection(server.url)
    try:
        assert connection.exchange('{"type": "ping"}')[-1]["type"] == "pong"
    finally:
        connection.close()
