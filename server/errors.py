"""Error responses: every failure is JSON `{error, message[, errors]}` with a fitting status."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from engine.errors import GraphError
from server.schemas import ErrorBody

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    429: "too_many_requests",
    431: "headers_too_large",
}


def error_code(status: int) -> str:
    """The `error` field for a status aiohttp or the protocol layer raised."""
    return _CODES.get(status, "error")


class ApiError(Exception):
    """Raised by a handler to answer with an error status and a JSON ErrorBody."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        errors: list[GraphError] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(error=code, message=message, errors=errors)
        self.headers = dict(headers or {})


def error_response(error: ApiError) -> web.Response:
    """The JSON response for an ApiError."""
    body = error.body.model_dump(mode="json")
    if body["errors"] is None:
        del body["errors"]  # only invalid graphs have a list of errors
    return web.json_response(body, status=error.status, headers=error.headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer ApiErrors, aiohttp's own errors (404, 405, 413, ...) and crashes with JSON."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # 405 keeps Allow; 413's text says how large the body was allowed to be.
        kept = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        message = exc.text if exc.status == 413 and exc.text else exc.reason
        return error_response(
            ApiError(exc.status, _CODES.get(exc.status, "error"), message, headers=kept)
        )
    except HttpProcessingError as exc:  # aiohttp's parsers, on a body a handler reads
        status = exc.code if 400 <= exc.code < 500 else 400
        message = f"malformed request: {exc.message or type(exc).__name__}"[:500]
        return error_response(ApiError(status, error_code(status), message))
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(ApiError(500, "internal_error", "the server failed; see its log"))
