"""The server's tunable limits and security settings, with safe defaults."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from engine.limits import limits

API_PREFIX = "/api/v1"
LOOPBACK_HOSTNAMES = frozenset({"localhost", "127.0.0.1", "::1"})
MIB = 1024 * 1024
# The query parameter that may carry the bearer token on GET requests.
TOKEN_PARAM = "token"


@dataclass(frozen=True)
class ServerSettings:
    """Where to listen and how much to accept; every limit has a default that suits one user."""

    host: str = "127.0.0.1"
    port: int = 8188
    # Bearer token required on every route when set; `serve` requires it off loopback.
    token: str | None = None
    # Origins besides the server's own that may drive it (an editor served elsewhere, say).
    allowed_origins: frozenset[str] = field(default_factory=frozenset)
    max_json_bytes: int = 8 * MIB
    max_upload_bytes: int = 20 * MIB
    # The engine's pixel limit by default, checked from the header before anything is decoded.
    max_upload_pixels: int = field(default_factory=lambda: limits().max_pixels)
    # Frames a websocket client may fall behind by before it is disconnected (it can resume).
    ws_max_queued: int = 20_000
    # Open websocket connections at once; more get a 429 until one closes.
    ws_max_connections: int = 64
    # Finished jobs kept in the history (the newest); older ones are forgotten, their files kept.
    history_max_jobs: int = 10_000
    # Seconds a finished job stays in the history; None keeps it until the count limit.
    history_max_age_s: float | None = None
    # How long shutdown waits for the running job to stop at its next step.
    shutdown_grace_s: float = 10.0

    def __post_init__(self) -> None:
        if self.token is not None and (problem := token_problem(self.token)) is not None:
            raise ValueError(problem)

    @property
    def max_request_bytes(self) -> int:
        """aiohttp's `client_max_size`: the largest body any route reads into memory."""
        return max(self.max_json_bytes, self.max_upload_bytes) + MIB


MIN_TOKEN_CHARS = 16


def token_problem(token: str) -> str | None:
    """Why a bearer token is too weak to guard the server, or None if it will do."""
    if token != token.strip() or any(c.isspace() for c in token):
        return "the token may not contain spaces"
    if len(token) < MIN_TOKEN_CHARS:
        return f"the token must be at least {MIN_TOKEN_CHARS} characters long"
    if len(set(token)) < 4:
        return "the token is too repetitive to be guessed slowly"
    if not token.isprintable() or not token.isascii():
        return "the token must be printable ASCII"
    return None


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback name or address; unknown names count as not loopback."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
