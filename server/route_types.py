"""What a route table entry holds: the handler, and what the OpenAPI description says about it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp.typedefs import Handler
from pydantic import BaseModel


@dataclass(frozen=True)
class Body:
    """A response body that is not one of our models: a file, a schema, Markdown."""

    media_type: str
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})


Response = type[BaseModel] | Body


@dataclass(frozen=True)
class Route:
    """One HTTP route and its documentation."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    responses: Mapping[int, Response]
    body: type[BaseModel] | None = None
    multipart: bool = False
    query: type[BaseModel] | None = None
    # Error statuses this route answers with an ErrorBody (401/403 apply to every route).
    errors: tuple[int, ...] = ()
