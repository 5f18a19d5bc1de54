"""A small registry that documents /api/v1 routes as they are added, served as ``/api/openapi.json``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Answers the app gives before a handler decides anything (scrm.app.webapp / scrm.core.http.limits): 400 a malformed request
# (a NUL, bad JSON, a malformed id), 401 no or a wrong token, 408 a body not sent in time, 413 a body over the cap.
EDGE_ERRORS = (400, 401, 408, 413)

_paths: dict[str, dict[str, Any]] = {}
_schemas: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}},
            }
        },
    }
}


def query(name: str, *, required: bool = False, enum: list[str] | None = None, type: str = "string") -> dict[str, Any]:
    """A query parameter for ``add_api_route(parameters=[...])``."""
    spec: dict[str, Any] = {"type": type}
    if enum is not None:
        spec["enum"] = enum
    return {"name": name, "in": "query", "required": required, "schema": spec}


def schema(name: str, body: dict[str, Any]) -> dict[str, str]:
    _schemas[name] = body
    return {"$ref": f"#/components/schemas/{name}"}


def add_api_route(
    app: web.Application,
    method: str,
    path: str,
    handler: Handler,
    *,
    summary: str,
    response: dict[str, Any] | None = None,
    request_body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    errors: tuple[int, ...] = (400, 401, 404),
    success: int | tuple[int, ...] = 200,
    content_type: str = "application/json",
) -> None:
    """Register ``/api/v1`` + path on the app and describe it in the OpenAPI document. ``success`` is the status (or
    statuses) the handler answers when it works (201 for a create); ``content_type`` its body type. Besides
    ``errors``, every operation documents what the edge may answer for any route (:data:`EDGE_ERRORS`)."""
    full = "/api/v1" + path
    app.router.add_route(method, full, handler)
    body_schema = response or {"type": "object"} if content_type == "application/json" else {"type": "string"}
    ok = {"description": "OK", "content": {content_type: {"schema": body_schema}}}
    op: dict[str, Any] = {
        "summary": summary,
        "operationId": f"{method.lower()}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
        "security": [{"bearer": []}],
        "responses": {str(status): ok for status in ((success,) if isinstance(success, int) else success)},
    }
    for status in sorted({*errors, *EDGE_ERRORS}):
        op["responses"][str(status)] = {
            "description": "error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    params = list(parameters or [])
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            params.append({"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}})
    if params:
        op["parameters"] = params
    if request_body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": request_body}}}
    _paths.setdefault(full, {})[method.lower()] = op


def document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "SCRM API", "version": "1", "description": "JSON API; Authorization: Bearer <token>."},
        "paths": _paths,
        "components": {
            "schemas": _schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


async def openapi_view(request: web.Request) -> web.Response:
    return web.json_response(document())
