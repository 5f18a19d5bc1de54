"""/api/v1: operations views of the kernel (inbound events, outbound messages, outbox)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp import web

from bots.gateway.models import inbound_events
from bots.outbound.models import outbound_messages
from scrm.core.errors import InvalidInput
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import add_api_route, openapi_view, query, schema
from scrm.core.outbox import outbox


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "50")
    if not raw.isdecimal() or not 1 <= int(raw) <= 500:
        raise InvalidInput("limit must be an integer from 1 to 500", field="limit")
    return int(raw)


def _iso(row: Any, *names: str) -> dict[str, Any]:
    return {n: (getattr(row, n).isoformat() if getattr(row, n) is not None else None) for n in names}


async def list_inbound_events(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    q = sa.select(inbound_events).order_by(inbound_events.c.id.desc()).limit(_limit(request))
    for name in ("channel", "kind", "external_userid", "status"):
        if value := request.query.get(name):
            q = q.where(inbound_events.c[name] == value)
    async with rt.db.read() as conn:
        rows = (await conn.execute(q)).all()
    items = [
        {
            "id": r.id,
            "channel": r.channel,
            "kind": r.kind,
            "external_userid": r.external_userid,
            "user_id": r.user_id,
            "chat_id": r.chat_id,
            "content": r.content,
            "status": r.status,
            "payload": r.payload,
            **_iso(r, "occurred_at", "received_at", "processed_at"),
        }
        for r in rows
    ]
    return web.json_response({"items": items})


async def list_outbound_messages(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    q = sa.select(outbound_messages).order_by(outbound_messages.c.id.desc()).limit(_limit(request))
    for name in ("channel", "status", "recipient", "purpose"):
        if value := request.query.get(name):
            q = q.where(outbound_messages.c[name] == value)
    async with rt.db.read() as conn:
        rows = (await conn.execute(q)).all()
    items = [
        {
            "id": r.id,
            "idempotency_key": r.idempotency_key,
            "channel": r.channel,
            "purpose": r.purpose,
            "recipient": r.recipient,
            "status": r.status,
            "error_code": r.error_code,
            "error_message": r.error_message,
            "attempts": r.attempts,
            "payload": r.payload,
            **_iso(r, "created_at", "sent_at"),
        }
        for r in rows
    ]
    return web.json_response({"items": items})


async def list_outbox(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    status = request.query.get("status", "pending")
    q = sa.select(outbox).order_by(outbox.c.id.desc()).limit(_limit(request))
    if status == "pending":
        q = q.where(outbox.c.done_at.is_(None), outbox.c.failed_at.is_(None))
    elif status == "failed":
        q = q.where(outbox.c.failed_at.is_not(None))
    elif status == "done":
        q = q.where(outbox.c.done_at.is_not(None))
    else:
        raise InvalidInput("status must be pending, failed or done", field="status")
    async with rt.db.read() as conn:
        rows = (await conn.execute(q)).all()
    items = [
        {
            "id": r.id,
            "topic": r.topic,
            "payload": r.payload,
            "attempts": r.attempts,
            "last_error": r.last_error,
            **_iso(r, "created_at", "done_at", "failed_at"),
        }
        for r in rows
    ]
    return web.json_response({"items": items})


def _list_of(name: str) -> dict[str, Any]:
    return schema(name + "List", {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object"}}}})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi_view)
    limit = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}}
    add_api_route(
        app,
        "GET",
        "/inbound-events",
        list_inbound_events,
        summary="Stored callbacks and synced messages",
        response=_list_of("InboundEvent"),
        parameters=[limit, *(query(n) for n in ("channel", "kind", "external_userid", "status"))],
        errors=(400, 401),
    )
    add_api_route(
        app,
        "GET",
        "/outbound-messages",
        list_outbound_messages,
        summary="Messages sent and their outcome",
        response=_list_of("OutboundMessage"),
        parameters=[limit, *(query(n) for n in ("channel", "status", "recipient", "purpose"))],
        errors=(400, 401),
    )
    add_api_route(
        app,
        "GET",
        "/outbox",
        list_outbox,
        summary="Outbox rows (pending, failed or done)",
        response=_list_of("OutboxRow"),
        parameters=[limit, query("status", enum=["pending", "failed", "done"])],
        errors=(400, 401),
    )
