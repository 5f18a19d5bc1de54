"""The /api/v1 document, generated from the pydantic models each route declares, kept on the application.

A route is registered with :func:`add_api_route`: its request body model (read with
:func:`scrm.core.http.bodies.read_body`) and its response models (one per success status) go into
``components/schemas`` through ``model_json_schema(ref_template="#/components/schemas/{model}")``, nested models
(``$defs``) included. The registry lives on the app (:data:`API_ROUTES`), so two apps in one process never share
paths and nothing is registered by importing a module; the document is built from it when first asked for. Served
as ``/api/openapi.json`` (:func:`openapi_view`).

OpenAPI 3.1.0: schemas are JSON Schema 2020-12 as pydantic writes them, so a nullable field is
``anyOf: [{...}, {"type": "null"}]``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Answers the app gives before a handler decides anything (scrm.app.webapp / scrm.core.http.limits): 400 a malformed request
# (a NUL, bad JSON, a malformed id), 401 no or a wrong token, 408 a body not sent in time, 413 a body over the cap.
EDGE_ERRORS = (400, 401, 408, 413)
REF_TEMPLATE = "#/components/schemas/{model}"


class ApiModel(BaseModel):
    """A response body: every field the handler answers, nothing else (``additionalProperties: false``)."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = None


class Error(ApiModel):
    """``{"error": {"code", "message", "details"?}}`` — every 4xx/5xx answer."""

    error: ErrorBody


@dataclass(frozen=True)
class Query:
    """A query parameter of an operation."""

    name: str
    required: bool = False
    enum: tuple[str, ...] | None = None
    type: Literal["string", "integer"] = "string"
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    format: str | None = None

    def to_json(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": self.type}
        for key, value in (
            ("enum", list(self.enum) if self.enum is not None else None),
            ("minimum", self.minimum),
            ("maximum", self.maximum),
            ("maxLength", self.max_length),
            ("format", self.format),
        ):
            if value is not None:
                spec[key] = value
        return {"name": self.name, "in": "query", "required": self.required, "schema": spec}


def query(name: str, *, required: bool = False, enum: list[str] | tuple[str, ...] | None = None, type: str = "string") -> Query:
    """A query parameter for ``add_api_route(parameters=[...])``."""
    return Query(name, required=required, enum=tuple(enum) if enum is not None else None, type="integer" if type == "integer" else "string")


@dataclass
class Operation:
    """One documented operation: what the contract test replays and validates."""

    method: str
    path: str
    request: type[BaseModel] | None
    responses: dict[int, type[BaseModel] | None]
    content_type: str


@functools.cache
def _schema_text(model: type[BaseModel], mode: Literal["validation", "serialization"]) -> str:
    """``model``'s JSON schema, made once per process: pydantic builds it anew on every call (up to ~1 ms for a
    nested model), and the route table refers to the same few models about 600 times — :class:`Error` alone on
    every route — which made each ``create_app`` ~0.35 s, and the tests build an app for most tests."""
    return json.dumps(model.model_json_schema(ref_template=REF_TEMPLATE, mode=mode))


@dataclass
class ApiDocument:
    """The OpenAPI document of one application."""

    paths: dict[str, dict[str, Any]] = field(default_factory=dict)
    schemas: dict[str, Any] = field(default_factory=dict)
    operations: dict[tuple[str, str], Operation] = field(default_factory=dict)

    def ref(self, model: type[BaseModel], mode: Literal["validation", "serialization"] = "serialization") -> dict[str, str]:
        """``model``'s schema (and its nested models') into components; a ``$ref`` to it."""
        body = json.loads(_schema_text(model, mode))  # a copy of its own: no two documents share a dict
        for name, sub in body.pop("$defs", {}).items():
            self._put(name, sub)
        self._put(model.__name__, body)
        return {"$ref": REF_TEMPLATE.format(model=model.__name__)}

    def _put(self, name: str, body: dict[str, Any]) -> None:
        known = self.schemas.setdefault(name, body)
        if known != body:
            raise ValueError(f"two different API schemas named {name}: rename one model")

    def to_json(self) -> dict[str, Any]:
        return {
            "openapi": "3.1.0",
            "info": {"title": "SCRM API", "version": "1", "description": "JSON API; Authorization: Bearer <token>."},
            "paths": self.paths,
            "components": {"schemas": self.schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        }


@dataclass
class RouteBook:
    """The /api/v1 routes an app registered, each with how to describe itself; the document is built from them the
    first time it is asked for (``GET /api/openapi.json``, the contract tests). A server nobody asks keeps none of
    it: the schemas of ~170 operations are ~1.5 MiB of dicts per process, and every ``run.py serve`` process would
    otherwise hold its own copy."""

    describers: list[Callable[[ApiDocument], None]] = field(default_factory=list)
    document: ApiDocument | None = None


API_ROUTES = web.AppKey("api_routes", RouteBook)


def _book(app: web.Application) -> RouteBook:
    book = app.get(API_ROUTES)
    if book is None:
        book = RouteBook()
        app[API_ROUTES] = book  # registered while routes are being added (before the app is frozen)
    return book


def api_document(app: web.Application) -> ApiDocument:
    """The app's document, built on first use from the routes registered (it raises, naming the model, when two
    different schemas share a name)."""
    book = app.get(API_ROUTES)
    if book is None:
        return ApiDocument()
    if book.document is None:
        doc = ApiDocument()
        for describe in book.describers:
            describe(doc)
        book.document = doc
    return book.document


def add_api_route(
    app: web.Application,
    method: str,
    path: str,
    handler: Handler,
    *,
    summary: str,
    response: type[BaseModel] | Mapping[int, type[BaseModel]] | None = None,
    request_body: type[BaseModel] | None = None,
    parameters: list[Query] | None = None,
    errors: tuple[int, ...] = (400, 401, 404),
    success: int | tuple[int, ...] = 200,
    content_type: str = "application/json",
    request_content_type: str | None = None,
    path_pattern: Mapping[str, str] | None = None,
) -> None:
    """Register ``/api/v1`` + path on the app; its description joins the app's OpenAPI document when that is built.

    ``response`` is the body model of every success status, or ``{status: model}`` when they differ (an error status
    named there answers that model instead of :class:`Error`); ``success``
    the status (or statuses) the handler answers when it works (201 for a create). ``request_body`` the JSON body
    model the handler reads with ``read_body`` (``request_content_type`` for a non-JSON body such as CSV).
    ``path_pattern`` a regular expression per path parameter (ids are decimal). Besides ``errors``, every operation
    documents what the edge may answer for any route (:data:`EDGE_ERRORS`)."""
    full = "/api/v1" + path
    app.router.add_route(method, full, handler)
    statuses = (success,) if isinstance(success, int) else success
    models: dict[int, type[BaseModel] | None] = (
        {s: response.get(s) for s in statuses} if isinstance(response, Mapping) else dict.fromkeys(statuses, response)
    )
    if content_type == "application/json" and any(model is None for model in models.values()):
        raise ValueError(f"{method} {full}: a JSON answer needs a response model")

    def describe(doc: ApiDocument) -> None:
        answers: dict[str, Any] = {}
        for status, model in models.items():
            body_schema: dict[str, Any] = {"type": "string"} if content_type != "application/json" or model is None else doc.ref(model)
            answers[str(status)] = {"description": "OK", "content": {content_type: {"schema": body_schema}}}
        for status in sorted({*errors, *EDGE_ERRORS}):
            error_model = response.get(status, Error) if isinstance(response, Mapping) else Error
            answers[str(status)] = {"description": "error", "content": {"application/json": {"schema": doc.ref(error_model)}}}
        op: dict[str, Any] = {
            "summary": summary,
            "operationId": f"{method.lower()}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
            "security": [{"bearer": []}],
            "responses": answers,
        }
        params = [p.to_json() for p in parameters or []]
        for part in path.split("/"):
            if part.startswith("{") and part.endswith("}"):
                name = part[1:-1]
                spec: dict[str, Any] = {"type": "string"}
                if path_pattern and name in path_pattern:
                    spec["pattern"] = path_pattern[name]
                params.append({"name": name, "in": "path", "required": True, "schema": spec})
        if params:
            op["parameters"] = params
        if request_body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": doc.ref(request_body, mode="validation")}}}
        elif request_content_type is not None:
            op["requestBody"] = {"required": True, "content": {request_content_type: {"schema": {"type": "string"}}}}
        doc.paths.setdefault(full, {})[method.lower()] = op
        doc.operations[(method.upper(), full)] = Operation(method.upper(), full, request_body, models, content_type)

    book = _book(app)
    book.describers.append(describe)
    if book.document is not None:  # registered after the document was first built: it joins it now
        describe(book.document)


async def openapi_view(request: web.Request) -> web.Response:
    return web.json_response(api_document(request.app).to_json())
