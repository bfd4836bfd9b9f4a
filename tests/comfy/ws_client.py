"""A minimal RFC 6455 websocket client on the standard library, as ComfyUI scripts use one.

The standard library has no websocket client, and the point of these tests is that a client
written against ComfyUI's protocol with nothing but the standard library works unchanged; this
is the smallest client that does (no extensions, no fragmentation on send, answers pings).
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
from urllib.parse import urlsplit

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 1, 2, 8, 9, 10, 0


class WebSocketClosed(ConnectionError):
    """The server closed the connection."""


class WebSocket:
    """A blocking websocket connection: `recv()` returns str for text frames, bytes for binary."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise WebSocketClosed("closed during the handshake")
            head += chunk
        status, *lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in status:
            raise ConnectionError(f"handshake refused: {status}")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            raise ConnectionError("bad Sec-WebSocket-Accept")

    def _exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise WebSocketClosed("connection closed")
            data += chunk
        return data

    def _frame(self) -> tuple[bool, int, bytes]:
        first, second = self._exact(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack(">H", self._exact(2))
        elif length == 127:
            (length,) = struct.unpack(">Q", self._exact(8))
        mask = self._exact(4) if second & 0x80 else None
        payload = self._exact(length)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return bool(first & 0x80), first & 0x0F, payload

    def send(self, payload: bytes | str, opcode: int | None = None) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        code = opcode if opcode is not None else (TEXT if isinstance(payload, str) else BINARY)
        header = bytes([0x80 | code])
        if len(data) < 126:
            header += bytes([0x80 | len(data)])
        elif len(data) < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(data))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(data))
        mask = os.urandom(4)  # clients must mask every frame
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self) -> str | bytes:
        message, kind = b"", None
        while True:
            fin, opcode, payload = self._frame()
            if opcode == PING:
                self.send(payload, PONG)
                continue
            if opcode == PONG:
                continue
            if opcode == CLOSE:
                raise WebSocketClosed(payload[2:].decode("utf-8", "replace"))
            if opcode != CONTINUATION:
                kind = opcode
            message += payload
            if fin:
                return message.decode() if kind == TEXT else message

    def close(self) -> None:
        try:
            self.send(struct.pack(">H", 1000), CLOSE)
        except OSError:
            pass
        self.sock.close()
