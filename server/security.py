"""Request guards: bearer token, Host and Origin checks, so a web page cannot drive the server.

- Token: when set, every route (the websocket too) needs `Authorization: Bearer <token>`; GET
  requests may pass `?token=` instead, because browsers cannot set headers on websockets or
  `<img>` tags.
- Origin: a state-changing request or a websocket upgrade that carries an `Origin` header must
  come from the server's own origin or an allowed one. Clients that send no Origin (scripts,
  curl) are not browsers acting for a foreign page, so they pass.
- Host: on a loopback address, the Host header must name loopback, which defeats DNS
  rebinding (a foreign name resolving to 127.0.0.1 would otherwise count as same-origin).
"""

from __future__ import annotations

import hmac
import re
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from server.errors import ApiError
from server.settings import LOOPBACK_HOSTNAMES, TOKEN_PARAM, ServerSettings, is_loopback

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The editor's page and bundle hold no data, and a browser cannot add a token to the page's own
# script tags; the page asks the person for the token and sends it on every API call.
_PUBLIC_PAGE = re.compile(r"^/(assets/[A-Za-z0-9_.-]+)?$")


def security_middleware(settings: ServerSettings) -> Middleware:
    """The middleware enforcing the token, Host and Origin rules for `settings`."""
    check_host = is_loopback(settings.host)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if check_host and _hostname(request.host) not in LOOPBACK_HOSTNAMES:
            raise ApiError(403, "bad_host", "this server only answers to a loopback host name")
        public = request.method in SAFE_METHODS and _PUBLIC_PAGE.match(request.path)
        if settings.token is not None and not public and not _has_token(request, settings.token):
            raise ApiError(
                401,
                "unauthorized",
                "missing or wrong bearer token",
                headers={hdrs.WWW_AUTHENTICATE: "Bearer"},
            )
        if _needs_origin_check(request) and not _origin_allowed(request, settings):
            raise ApiError(
                403,
                "cross_origin",
                f"requests from origin {request.headers[hdrs.ORIGIN]!r} are not allowed",
            )
        return await handler(request)

    return guard


def _split_host(netloc: str) -> tuple[str, str | None]:
    """ "127.0.0.1:8188" → ("127.0.0.1", "8188"); "[::1]" → ("::1", None)."""
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        return host.lower(), rest[1:] if rest.startswith(":") else None
    if netloc.count(":") == 1:
        host, _, port = netloc.partition(":")
        return host.lower(), port
    return netloc.lower(), None  # a bare name, or a bare IPv6 address


def _hostname(host: str) -> str:
    return _split_host(host)[0]


def _has_token(request: web.Request, token: str) -> bool:
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        given = request.query.get(TOKEN_PARAM, "") if request.method in SAFE_METHODS else ""
    try:
        # aiohttp decodes header bytes that are not UTF-8 with surrogateescape; undo that here.
        presented = given.strip().encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(presented, token.encode())


def _needs_origin_check(request: web.Request) -> bool:
    if hdrs.ORIGIN not in request.headers:
        return False
    upgrade = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
    return upgrade or request.method not in SAFE_METHODS


def _origin_allowed(request: web.Request, settings: ServerSettings) -> bool:
    origin = request.headers[hdrs.ORIGIN].strip().lower()
    if origin in {o.lower().rstrip("/") for o in settings.allowed_origins}:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # "null" (sandboxed pages, file://) and anything odd
    own = f"{request.scheme}://{request.host}".lower()
    return _normal_origin(parts.scheme, parts.netloc) == _normal_origin(*own.split("://", 1))


def _normal_origin(scheme: str, netloc: str) -> str:
    host, port = _split_host(netloc)
    return f"{scheme}://{host}:{port or {'http': '80', 'https': '443'}[scheme]}"
