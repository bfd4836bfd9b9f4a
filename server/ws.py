"""The websocket endpoint: connections, their outgoing queues, and the client message protocol.

A connection opened with `?client_id=` receives the events of that client's jobs; any
connection can subscribe to any job by id. `?resume=JOB:SEQ` (repeatable) subscribes at
connect time and replays what came after SEQ, before any live event of that job can arrive.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque

from aiohttp import WSCloseCode, WSMsgType, web
from pydantic import ValidationError

from engine.documents import DocumentError, parse_json
from server.codec import Codec, NativeCodec
from server.connection_messages import (
    ErrorData,
    ErrorMessage,
    Hello,
    HelloData,
    Ping,
    Pong,
    PongData,
    Subscribe,
    Subscribed,
    SubscribedData,
    Unsubscribe,
    Unsubscribed,
    UnsubscribedData,
    client_message_adapter,
)
from server.errors import ApiError
from server.hub import MAX_SUBSCRIPTIONS
from server.messages import Frame
from server.schemas import CLIENT_ID_PATTERN
from server.services import Services, services

log = logging.getLogger(__name__)

CLOSE_TOO_SLOW = 4008
MAX_CLIENT_MESSAGE = 64 * 1024
MAX_RESUMES = 100
HEARTBEAT_S = 30.0
NATIVE_CODEC = NativeCodec()
_RESUME = re.compile(r"([0-9a-f]{32}):(\d{1,18})")


class WsConnection:
    """One websocket with an outgoing queue drained by its own writer task.

    `send` never blocks, so one slow client delays no one. A client that falls more than
    `max_queued` job-event frames behind (live or replayed) gets what was queued, then is
    disconnected (close code 4008) and can resume from its last sequence number, so every
    resume makes progress; connection messages do not count.
    """

    def __init__(
        self, ws: web.WebSocketResponse, client_id: str | None, codec: Codec, max_queued: int
    ) -> None:
        self.ws, self.client_id, self.codec = ws, client_id, codec
        self._max_queued = max_queued
        self._queue: deque[tuple[Frame, bool]] = deque()
        self._live_queued = 0
        self._ready = asyncio.Event()
        self._overflowed = False
        self._writer = asyncio.create_task(self._write(), name="latentgraph-ws-writer")

    def send(self, frames: list[Frame], live: bool = False) -> None:
        """Queue frames for this client; `live` (job event) frames count against the backlog."""
        if self._overflowed:
            return
        if live and self._live_queued + len(frames) > self._max_queued:
            self._overflowed = True  # the writer sends what is queued, then closes
        else:
            self._queue.extend((frame, live) for frame in frames)
            self._live_queued += len(frames) if live else 0
        self._ready.set()

    async def stop(self) -> None:
        """Stop the writer (the socket is closed or closing)."""
        self._writer.cancel()
        await asyncio.gather(self._writer, return_exceptions=True)

    async def _write(self) -> None:
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                while self._queue:
                    frame, live = self._queue.popleft()
                    self._live_queued -= live
                    if isinstance(frame, str):
                        await self.ws.send_str(frame)
                    else:
                        await self.ws.send_bytes(frame)
                if self._overflowed:
                    log.warning("closing websocket of client %s: it fell behind", self.client_id)
                    await self.ws.close(code=CLOSE_TOO_SLOW, message=b"too slow; resume from seq")
                    return
        except ConnectionError:
            return  # the client went away; the read loop notices and cleans up
        except Exception:
            log.exception("websocket writer of client %s failed", self.client_id)
            await self.ws.close(code=WSCloseCode.INTERNAL_ERROR)


async def native_websocket(request: web.Request) -> web.StreamResponse:
    """GET /ws in the native protocol (see docs/api/websocket.md)."""
    client_id = request.query.get("client_id")
    if client_id is not None and not re.fullmatch(CLIENT_ID_PATTERN, client_id):
        raise ApiError(400, "bad_request", f"client_id must match {CLIENT_ID_PATTERN}")
    resume = _parse_resume(request.query.getall("resume", []))
    return await serve_websocket(request, NATIVE_CODEC, client_id, resume)


async def serve_websocket(
    request: web.Request, codec: Codec, client_id: str | None, resume: list[tuple[str, int]]
) -> web.WebSocketResponse:
    """Run one websocket connection with `codec`; protocol facades reuse this."""
    svc = services(request)
    limit = svc.settings.ws_max_connections
    if len(svc.hub.connections) >= limit:
        raise ApiError(
            429,
            "too_many_connections",
            f"the server already has {limit} websocket connections (ws_max_connections)",
            headers={"Retry-After": "5"},
        )
    ws = web.WebSocketResponse(
        heartbeat=HEARTBEAT_S, compress=False, max_msg_size=MAX_CLIENT_MESSAGE
    )
    await ws.prepare(request)
    conn = WsConnection(ws, client_id, codec, svc.settings.ws_max_queued)
    svc.hub.attach(conn)
    svc.hub.send(conn, Hello(data=HelloData(client_id=client_id)))
    svc.hub.send(conn, svc.jobs.queue_status())
    try:
        # Active jobs first, with no await in between, so that none of their live events can
        # slip in ahead of the replay; finished jobs get no live events, so they can wait.
        later = [(j, s) for j, s in resume if not _subscribe_active(svc, conn, j, s)]
        for job_id, after_seq in later:
            await _subscribe(svc, conn, job_id, after_seq)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await _handle(svc, conn, message.data)
            elif message.type == WSMsgType.BINARY:
                _error(svc, conn, "bad_message", "send JSON text messages")
    finally:
        svc.hub.detach(conn)
        await conn.stop()
    return ws


async def close_all(svc: Services) -> None:
    """Close every websocket (server shutdown)."""
    for conn in svc.hub.connections:
        if isinstance(conn, WsConnection):
            await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


async def _handle(svc: Services, conn: WsConnection, text: str) -> None:
    """Answer one client message; nothing a client sends can break the connection's stream."""
    try:
        await _handle_message(svc, conn, text)
    except Exception:
        log.exception("websocket message from client %s failed", conn.client_id)
        _error(svc, conn, "internal_error", "the server could not handle this message")


async def _handle_message(svc: Services, conn: WsConnection, text: str) -> None:
    try:
        message = client_message_adapter.validate_python(parse_json(text, "the message"))
    except DocumentError as exc:
        _error(svc, conn, "bad_message", str(exc))
        return
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}" for e in exc.errors()
        )
        _error(svc, conn, "bad_message", problems)
        return
    if isinstance(message, Subscribe):
        await _subscribe(svc, conn, message.data.job_id, message.data.after_seq)
    elif isinstance(message, Unsubscribe):
        svc.hub.unsubscribe(conn, message.data.job_id)
        svc.hub.send(conn, Unsubscribed(data=UnsubscribedData(job_id=message.data.job_id)))
    elif isinstance(message, Ping):
        svc.hub.send(conn, Pong(data=PongData(**message.data)))


def _subscribe_active(svc: Services, conn: WsConnection, job_id: str, after_seq: int) -> bool:
    job = svc.jobs.active(job_id)
    if job is None:
        return False
    data = SubscribedData(
        job_id=job_id, status=job.status, after_seq=after_seq, last_seq=job.last_seq
    )
    svc.hub.send(conn, Subscribed(data=data))
    svc.hub.subscribe(conn, job_id, after_seq, job.log, live=True)
    return True


async def _subscribe(svc: Services, conn: WsConnection, job_id: str, after_seq: int) -> None:
    if svc.hub.subscriptions(conn) >= MAX_SUBSCRIPTIONS:
        _error(svc, conn, "too_many_subscriptions", f"at most {MAX_SUBSCRIPTIONS}", job_id)
        return
    if _subscribe_active(svc, conn, job_id, after_seq):
        return
    found = await svc.jobs.stored_events(job_id, after_seq, None)
    if _subscribe_active(svc, conn, job_id, after_seq):
        return  # cannot happen for a finished job; kept so the order of checks cannot matter
    if found is None:
        _error(svc, conn, "unknown_job", f"no job {job_id}", job_id)
        return
    row, events = found
    data = SubscribedData(
        job_id=job_id,
        status=row.status,  # type: ignore[arg-type]
        after_seq=after_seq,
        last_seq=row.last_seq,
    )
    svc.hub.send(conn, Subscribed(data=data))
    svc.hub.subscribe(conn, job_id, after_seq, events, live=False)


def _error(
    svc: Services, conn: WsConnection, code: str, message: str, job_id: str | None = None
) -> None:
    data = ErrorData(code=code, message=message, job_id=job_id)  # type: ignore[arg-type]
    svc.hub.send(conn, ErrorMessage(data=data))


def _parse_resume(values: list[str]) -> list[tuple[str, int]]:
    if len(values) > MAX_RESUMES:
        raise ApiError(400, "bad_request", f"at most {MAX_RESUMES} resume cursors")
    cursors = []
    for value in values:
        match = _RESUME.fullmatch(value)
        if match is None:
            raise ApiError(400, "bad_request", f"resume must look like JOB_ID:SEQ, not {value!r}")
        cursors.append((match.group(1), int(match.group(2))))
    return cursors
