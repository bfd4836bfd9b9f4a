"""Malformed requests get a structured JSON 4xx, never a 500, and the server keeps answering."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from PIL import Image

from server.settings import ServerSettings
from tests.server.harness import API, RunningServer, graph, submit_and_wait

JSON = {"Content-Type": "application/json"}
GRAPH_TEXT = json.dumps({"graph": graph(image=False)})
DEEP = "[" * 1000 + "]" * 1000

BAD_BODIES: dict[str, tuple[bytes, dict[str, str]]] = {
    "latin-1": (GRAPH_TEXT.replace('"out"', '"caf\u00e9"').encode("latin-1"), JSON),
    "utf-16": (GRAPH_TEXT.encode("utf-16"), JSON),
    "utf-16 without BOM": (GRAPH_TEXT.encode("utf-16-le"), JSON),
    "png": (b"\x89PNG\r\n\x1a\n" + bytes(100), JSON),
    "deep nesting": (('{"graph": ' + DEEP + "}").encode(), JSON),
    "huge integer": (GRAPH_TEXT.replace('"value": 2', '"value": ' + "9" * 5000).encode(), JSON),
    "duplicate keys": (b'{"graph": {"nodes": {}}, "graph": {"nodes": {}}}', JSON),
    "lone surrogate": (GRAPH_TEXT.replace('"out"', '"\\ud800"').encode(), JSON),
    "NaN": (GRAPH_TEXT.replace('"value": 2', '"value": NaN').encode(), JSON),
    "not JSON at all": (b"{graph", JSON),
}


async def _json_error(response: aiohttp.ClientResponse) -> dict[str, Any]:
    assert response.content_type == "application/json", await response.text()
    body = await response.json()
    assert body["error"] and body["message"]
    return body


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_a_malformed_job_body_is_a_400(server: RunningServer, name: str) -> None:
    data, headers = BAD_BODIES[name]

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.url}{API}/jobs", data=data, headers=headers) as r:
                assert r.status == 400, await r.text()
                await _json_error(r)
            async with http.get(f"{server.url}{API}/jobs") as r:
                assert r.status == 200 and (await r.json())["total"] == 0

    asyncio.run(scenario())


def test_json_routes_check_the_content_type(server: RunningServer) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            for kind in ("text/plain", "application/x-www-form-urlencoded"):
                async with http.post(
                    f"{server.url}{API}/jobs", data=GRAPH_TEXT, headers={"Content-Type": kind}
                ) as r:
                    assert r.status == 415
                    assert (await _json_error(r))["error"] == "unsupported_media_type"
            async with http.post(
                f"{server.url}{API}/free",
                data=b'{"unload_models": true}',
                headers={"Content-Type": "text/csv"},
            ) as r:
                assert r.status == 415
            async with http.post(f"{server.url}{API}/free") as r:  # no body at all is fine
                assert r.status == 200

    asyncio.run(scenario())


def test_a_lone_surrogate_in_a_graph_never_makes_a_job_unreadable(server: RunningServer) -> None:
    document = graph(image=False)
    document["editor"] = {"nodes": {"a": {"title": "\ud800"}}}

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            body = json.dumps({"graph": document}).encode()  # ensure_ascii: "\\ud800" escapes
            async with http.post(f"{server.url}{API}/jobs", data=body, headers=JSON) as r:
                assert r.status == 400
                assert "lone surrogate" in (await _json_error(r))["message"]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "query",
    [
        "jobs?offset=9223372036854775808",
        "jobs?offset=99999999999999999999999999",
        "jobs?limit=-1",
        "jobs?status=nope",
        "jobs/0123456789abcdef0123456789abcdef/events?after_seq=9223372036854775808",
        "view?filename=%ff%fe",
        "view?filename=a&subfolder=%00",
    ],
)
def test_out_of_range_queries_are_400s_not_500s(server: RunningServer, query: str) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}{API}/{query}") as r:
                assert 400 <= r.status < 500, await r.text()
                await _json_error(r)

    asyncio.run(scenario())


def _raw_request(server: RunningServer, payload: bytes) -> bytes:
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "payload",
    [
        b"GET /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: x\r\n\r\n",
        b"GET /api/v1/jobs HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n",
        b"NOT-HTTP\r\n\r\n",
        b"GET /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n",
    ],
)
def test_protocol_errors_are_json_too(server: RunningServer, payload: bytes) -> None:
    response = _raw_request(server, payload)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4")), head
    assert b"application/json" in head
    assert json.loads(body)["error"]


def test_a_non_utf8_authorization_header_is_a_401(start: Callable[..., RunningServer]) -> None:
    server = start(ServerSettings(token="s3cret-0123456789ab"))
    payload = (
        b"GET /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Authorization: Bearer \xff\xfe\xe9\r\n\r\n"
    )
    head, _, body = _raw_request(server, payload).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401"), head
    assert json.loads(body)["error"] == "unauthorized"


@pytest.mark.parametrize("token", ["   ", "x", "short-token", "a" * 40, "has space in the middle!"])
def test_weak_tokens_are_refused(token: str) -> None:
    with pytest.raises(ValueError):
        ServerSettings(token=token)


def _png(size: tuple[int, int] = (4, 4)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_multipart_without_a_boundary_is_a_400(server: RunningServer) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            for kind in ("multipart/form-data", 'multipart/form-data; boundary=""'):
                async with http.post(
                    f"{server.url}{API}/uploads",
                    data=b"--x\r\n\r\n",
                    headers={"Content-Type": kind},
                ) as r:
                    assert r.status == 400, await r.text()
                    await _json_error(r)
            body = b"--b\r\nContent-Disposition: form-data; name=image\r\n\r\n"
            async with http.post(
                f"{server.url}{API}/uploads",
                data=body,
                headers={"Content-Type": "multipart/form-data; boundary=b"},
            ) as r:
                assert 400 <= r.status < 500, await r.text()

    asyncio.run(scenario())


def test_an_upload_named_like_a_folder_gets_another_name(server: RunningServer) -> None:
    (server.paths.input / "cat.png").mkdir(parents=True)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            form = aiohttp.FormData()
            form.add_field("image", _png(), filename="cat.png", content_type="image/png")
            async with http.post(f"{server.url}{API}/uploads", data=form) as r:
                assert r.status == 201, await r.text()
                name = (await r.json())["name"]
            assert name != "cat.png" and (server.paths.input / name).is_file()
            async with http.get(
                f"{server.url}{API}/view", params={"filename": name, "type": "input"}
            ) as r:
                assert r.status == 200

    asyncio.run(scenario())


def test_a_symlink_loop_in_the_input_folder_is_a_404(server: RunningServer) -> None:
    server.paths.input.mkdir(parents=True, exist_ok=True)
    os.symlink("loop-b.png", server.paths.input / "loop-a.png")
    os.symlink("loop-a.png", server.paths.input / "loop-b.png")

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.get(
                f"{server.url}{API}/view", params={"filename": "loop-a.png", "type": "input"}
            ) as r:
                assert r.status == 404
                await _json_error(r)
            async with http.get(f"{server.url}{API}/nodes") as r:
                assert r.status == 200

    asyncio.run(scenario())


def test_websocket_messages_that_break_encoding_get_errors_not_a_broken_stream(
    server: RunningServer,
) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{server.url}/ws") as ws:
                bad = [
                    '{"type": "ping", "data": {"x": "\\ud800"}}',
                    '{"type": "subscribe", "data": {"job_id": "'
                    + "0" * 32
                    + '", "after_seq": 9223372036854775808}}',
                    '{"type": "ping", "data": ' + "[" * 1000 + "]" * 1000 + "}",
                    '{"type": "ping", "data": {"n": ' + "9" * 5000 + "}}",
                    '{"type": "ping", "type": "ping"}',
                ]
                for text in bad:
                    await ws.send_str(text)
                    while True:
                        message = await ws.receive_json(timeout=10)
                        if message["type"] == "error":
                            break
                    assert message["data"]["code"] == "bad_message", message
                await ws.send_json({"type": "ping", "data": {"ok": 1}})
                while (message := await ws.receive_json(timeout=10))["type"] != "pong":
                    pass
                assert message["data"] == {"ok": 1}

    asyncio.run(scenario())


def test_history_keeps_the_newest_jobs_and_a_job_can_be_deleted_with_its_files(
    start: Callable[..., RunningServer],
) -> None:
    server = start(ServerSettings(history_max_jobs=2))

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            ids = [
                await submit_and_wait(http, server.url, graph(value=v, steps=1)) for v in range(4)
            ]
            async with http.get(f"{server.url}{API}/jobs") as r:
                kept = [j["job_id"] for j in (await r.json())["jobs"]]
            assert kept == [ids[3], ids[2]]
            async with http.get(f"{server.url}{API}/jobs/{ids[3]}") as r:
                (image,) = (await r.json())["outputs"]["out"]["images"]
            path = server.paths.output / image["subfolder"] / image["filename"]
            assert path.is_file()
            async with http.delete(f"{server.url}{API}/jobs/{ids[3]}") as r:
                assert r.status == 200, await r.text()
                assert (await r.json())["deleted_files"] == [
                    f"{image['subfolder']}/{image['filename']}"
                ]
            assert not path.exists()
            for job_id in (ids[3], ids[0]):
                async with http.delete(f"{server.url}{API}/jobs/{job_id}") as r:
                    assert r.status == 404
                    await _json_error(r)

    asyncio.run(scenario())


def test_an_active_job_cannot_be_deleted(server: RunningServer) -> None:
    from tests.server.conftest import gate
    from tests.server.harness import gate_graph, submit

    opened, reached = gate("hold")

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            job_id = await submit(http, server.url, {"graph": gate_graph("hold")})
            await asyncio.to_thread(reached.wait, 10)
            async with http.delete(f"{server.url}{API}/jobs/{job_id}") as r:
                assert r.status == 409
            opened.set()

    asyncio.run(scenario())


def test_replayed_events_count_against_the_backlog(start: Callable[..., RunningServer]) -> None:
    server = start(ServerSettings(ws_max_queued=3))

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            job_id = await submit_and_wait(http, server.url, graph(steps=40, image=False))
            async with http.ws_connect(f"{server.url}/ws?resume={job_id}:0") as ws:
                received = 0
                while True:
                    message = await ws.receive(timeout=10)
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                    received += "seq" in message.json()["data"]
            assert ws.close_code == 4008
            assert 1 <= received <= 4

    asyncio.run(scenario())


def test_websocket_connections_are_limited(start: Callable[..., RunningServer]) -> None:
    server = start(ServerSettings(ws_max_connections=2))

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            first = await http.ws_connect(f"{server.url}/ws")
            second = await http.ws_connect(f"{server.url}/ws")
            async with http.get(
                f"{server.url}/ws",
                headers={
                    "Upgrade": "websocket",
                    "Connection": "Upgrade",
                    "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                },
            ) as r:
                assert r.status == 429
                assert (await _json_error(r))["error"] == "too_many_connections"
            await first.close()
            for _ in range(100):
                if len(server.services.hub.connections) < 2:
                    break
                await asyncio.sleep(0.02)
            third = await http.ws_connect(f"{server.url}/ws")
            await second.close()
            await third.close()

    asyncio.run(scenario())
