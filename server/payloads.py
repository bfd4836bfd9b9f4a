"""Reading request bodies and queries into models, and writing models as JSON responses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from engine.documents import DocumentError, parse_json
from server.errors import ApiError
from server.settings import TOKEN_PARAM

M = TypeVar("M", bound=BaseModel)


def json_response(
    model: BaseModel, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A model as a JSON response."""
    return web.Response(
        status=status,
        text=model.model_dump_json(),
        content_type="application/json",
        headers=headers,
    )


async def read_json(
    request: web.Request, limit: int, *, optional: bool = False, any_media_type: bool = False
) -> Any:
    """The request's JSON object; 413 past `limit` bytes, 415 unless it is sent as JSON (or
    `any_media_type`), 400 if it is not a strict UTF-8 JSON object (see engine.documents)."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"the body is larger than {limit} bytes")
    raw = await request.read()
    if len(raw) > limit:
        raise ApiError(413, "too_large", f"the body is larger than {limit} bytes")
    if optional and not raw.strip():
        return {}
    if not any_media_type and not is_json_media_type(request.content_type):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as application/json, not {request.content_type or 'untyped'}",
        )
    try:
        body = parse_json(raw, "the body")
    except DocumentError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    return body


def is_json_media_type(media_type: str) -> bool:
    """application/json, or a JSON-based type such as application/merge-patch+json."""
    kind = media_type.strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def parse_model(model: type[M], data: Any, what: str = "body") -> M:
    """Validate data against a model; 400 naming every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, "bad_request", f"invalid {what}: {describe(exc)}") from None


def parse_query(request: web.Request, model: type[M], list_fields: tuple[str, ...] = ()) -> M:
    """The query string as a model; `list_fields` are comma-separated lists.

    `token` is the security middleware's, never a route's parameter.
    """
    data: dict[str, Any] = {}
    for key in request.query:
        if key == TOKEN_PARAM:
            continue
        values = request.query.getall(key)
        if len(values) > 1:
            raise ApiError(400, "bad_request", f"query parameter {key!r} is given twice")
        data[key] = [v for v in values[0].split(",") if v] if key in list_fields else values[0]
    return parse_model(model, data, "query")


def describe(exc: ValidationError) -> str:
    """Every problem of a validation error on one line."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())
