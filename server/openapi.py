"""The OpenAPI 3.1 description of a route table, generated from its entries and the pydantic models.

`server/routes.py` serves it for ROUTES; `python -m server.openapi_file` writes docs/api/openapi.json.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from engine.graph import GraphFile
from server.connection_messages import ClientMessage, ServerMessage
from server.route_types import Body, Route
from server.schemas import ErrorBody

REF = "#/components/schemas/{model}"
_ERROR_TEXT = {
    400: "Bad request: the body or query is malformed, or the graph is invalid.",
    401: "A bearer token is required (when the server has one).",
    403: "Cross-origin request, wrong Host, or a path outside its folder.",
    404: "Not found.",
    409: "The job is not in a state that allows this.",
    413: "The body or upload is too large.",
    415: "Not multipart, or not an image we accept.",
}


def openapi_document(routes: Sequence[Route]) -> dict[str, Any]:
    """The OpenAPI description of every route in `routes`."""
    components = _component_schemas(routes)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Latentgraph API",
            "version": "1",
            "description": (
                "Run Stable Diffusion node graphs: submit graphs as jobs, follow them over the "
                "websocket at /ws (see /api/v1/docs/websocket), download their outputs."
            ),
        },
        "servers": [{"url": "http://127.0.0.1:8188"}],
        "security": [{}, {"bearerAuth": []}],
        "tags": [{"name": t} for t in dict.fromkeys(r.tag for r in routes)],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Required on every route when the server runs with --token.",
                }
            },
        },
    }


def _component_schemas(routes: Sequence[Route]) -> dict[str, Any]:
    models: list[tuple[str, Any]] = [("GraphFile", GraphFile), ("ErrorBody", ErrorBody)]
    for route in routes:
        if route.body is not None:
            models.append((route.body.__name__, route.body))
        for response in route.responses.values():
            if isinstance(response, type):
                models.append((response.__name__, response))
    models += [("ServerMessage", ServerMessage), ("ClientMessage", ClientMessage)]
    mode: JsonSchemaMode = "serialization"
    inputs = [(name, mode, TypeAdapter(kind)) for name, kind in dict(models).items()]
    keyed, defs = TypeAdapter.json_schemas(inputs, ref_template=REF)
    schemas = dict(defs.get("$defs", {}))
    for (name, _mode), schema in keyed.items():
        if "$ref" not in schema:  # unions are not models: give them a name of their own
            schemas[name] = schema
    return dict(sorted(schemas.items()))


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.handler.__name__,
        "summary": route.summary,
        "tags": [route.tag],
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", route.path)
    ]
    if route.query is not None:
        parameters += _query_parameters(route.query)
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": route.body.__name__ != "FreeMemory",
            "content": {"application/json": {"schema": _ref(route.body)}},
        }
    if route.multipart:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["image"],
                        "properties": {
                            "image": {"type": "string", "contentMediaType": "image/*"},
                            "subfolder": {"type": "string", "default": ""},
                        },
                    }
                }
            },
        }
    responses: dict[str, Any] = {}
    for status, response in sorted(route.responses.items()):
        responses[str(status)] = _response(status, response)
    for status in sorted({*route.errors, 401, 403}):
        responses[str(status)] = {
            "description": _ERROR_TEXT[status],
            "content": {"application/json": {"schema": _ref(ErrorBody)}},
        }
    operation["responses"] = responses
    return operation


def _response(status: int, response: type[BaseModel] | Body) -> dict[str, Any]:
    if isinstance(response, Body):
        if status == 101:
            return {"description": response.description}
        content = {response.media_type: {"schema": dict(response.schema)}}
        return {"description": response.description, "content": content}
    description = (response.__doc__ or response.__name__).strip().splitlines()[0]
    return {"description": description, "content": {"application/json": {"schema": _ref(response)}}}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema["properties"].items():
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        description = prop.pop("description", None)
        if description:
            parameter["description"] = description
        prop.pop("title", None)
        parameter["schema"] = prop
        if _is_array(prop):
            # `status` is comma-separated; `resume` is repeated.
            parameter["style"], parameter["explode"] = "form", name == "resume"
        parameters.append(parameter)
    return parameters


def _is_array(schema: dict[str, Any]) -> bool:
    options = schema.get("anyOf", [schema])
    return any(option.get("type") == "array" for option in options)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}
