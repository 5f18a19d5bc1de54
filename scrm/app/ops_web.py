"""/api/v1: operations views of the kernel (inbound events, outbound messages, outbox)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from pydantic import Field

from bots.gateway.models import inbound_events
from bots.outbound.models import outbound_messages
from scrm.core.errors import InvalidInput
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import ApiModel, Query, add_api_route, openapi_view, query
from scrm.core.outbox import outbox


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "50")
    if not raw.isdecimal() or not 1 <= int(raw) <= 500:
        raise InvalidInput("limit 须为 1 到 500 的整数 (limit must be an integer from 1 to 500)", field="limit")
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
        raise InvalidInput("status 只能是 pending、failed 或 done (status must be pending, failed or done)", field="status")
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


class InboundEvent(ApiModel):
    id: int
    channel: str
    kind: str
    external_userid: str
    user_id: str
    chat_id: str
    content: str
    status: str = Field(description="pending, processed, unknown or failed")
    payload: dict[str, Any]
    occurred_at: dt.datetime | None
    received_at: dt.datetime | None
    processed_at: dt.datetime | None


class InboundEventList(ApiModel):
    items: list[InboundEvent]


class OutboundMessage(ApiModel):
    id: int
    idempotency_key: str
    channel: str
    purpose: str
    recipient: str
    status: str
    error_code: int | None
    error_message: str | None
    attempts: int
    payload: dict[str, Any]
    created_at: dt.datetime | None
    sent_at: dt.datetime | None


class OutboundMessageList(ApiModel):
    items: list[OutboundMessage]


class OutboxRow(ApiModel):
    id: int
    topic: str
    payload: dict[str, Any]
    attempts: int
    last_error: str | None
    created_at: dt.datetime | None
    done_at: dt.datetime | None
    failed_at: dt.datetime | None


class OutboxRowList(ApiModel):
    items: list[OutboxRow]


LIMIT = Query("limit", type="integer", minimum=1, maximum=500)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi_view)
    add_api_route(
        app,
        "GET",
        "/inbound-events",
        list_inbound_events,
        summary="Stored callbacks and synced messages",
        response=InboundEventList,
        parameters=[LIMIT, *(query(n) for n in ("channel", "kind", "external_userid", "status"))],
        errors=(400, 401),
    )
    add_api_route(
        app,
        "GET",
        "/outbound-messages",
        list_outbound_messages,
        summary="Messages sent and their outcome",
        response=OutboundMessageList,
        parameters=[LIMIT, *(query(n) for n in ("channel", "status", "recipient", "purpose"))],
        errors=(400, 401),
    )
    add_api_route(
        app,
        "GET",
        "/outbox",
        list_outbox,
        summary="Outbox rows (pending, failed or done)",
        response=OutboxRowList,
        parameters=[LIMIT, query("status", enum=["pending", "failed", "done"])],
        errors=(400, 401),
    )
