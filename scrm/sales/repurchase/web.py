"""/api/v1/repurchase-alerts (thin: rules in services and domain). Every answer is narrowed to the caller's data
scope: a salesperson sees and acts on the alerts of their own customers only; someone else's alert answers as unknown."""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import Field

from scrm.core.errors import InvalidInput
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import ApiModel, add_api_route, query
from scrm.governance.scopes.services import DataScope, scope_for
from scrm.sales.repurchase import services
from scrm.sales.repurchase.domain import ALERT_STATUSES, KINDS, AlertNotFound, AlertStatus
from scrm.sales.repurchase.queries import AlertView, get_alert, list_alerts


class AlertOut(ApiModel):
    id: int
    kind: str = Field(description="due (复购提醒: the predicted date is near) | at_risk (流失预警: past twice the usual interval)")
    customer_id: int
    customer_name: str
    sku: str
    product_name: str
    owner: str = Field(description="the salesperson's WeCom userid (empty: nobody serves the customer)")
    last_purchase_on: dt.date
    interval_days: int = Field(description="the usual interval in days (median of the customer's gaps, or the product's)")
    due_on: dt.date = Field(description="the predicted purchase date")
    status: str = Field(description=", ".join(ALERT_STATUSES))
    coupon_id: int | None = Field(description="the coupon sent with the reminder, if any")
    created_at: dt.datetime
    resolved_at: dt.datetime | None
    resolved_by: str = Field(description="order:<number> when the customer bought again, else who closed it")


class AlertList(ApiModel):
    items: list[AlertOut]


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdecimal() or len(raw) > 18:
        raise InvalidInput("编号必须是数字 (id must be a number)", field="id")
    return int(raw)


def _choice(request: web.Request, name: str, allowed: tuple[str, ...], default: str = "") -> str:
    value = request.query.get(name, default)
    if value and value not in allowed:
        raise InvalidInput(f"{name} 须为 {'、'.join(allowed)} 之一 ({name})", field=name)
    return value


async def _answer(request: web.Request, alert_id: int, scope: DataScope) -> web.Response:
    async with request.app[RUNTIME].db.read() as conn:
        alert: AlertView | None = await get_alert(conn, alert_id, scope)
    if alert is None:
        raise AlertNotFound("没有这条复购预警 (no such repurchase alert)", alert_id=alert_id)
    return web.json_response(alert.to_json())


async def list_repurchase_alerts(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    kind = _choice(request, "kind", KINDS)
    status = _choice(request, "status", (*ALERT_STATUSES, "all"), AlertStatus.OPEN)
    owner = request.query.get("owner", "").strip()[:64]
    scope = await scope_for(rt)
    async with rt.db.read() as conn:
        found = await list_alerts(conn, scope=scope, kind=kind, status="" if status == "all" else status, owner=owner)
    return web.json_response({"items": [a.to_json() for a in found]})


async def _resolve(request: web.Request, status: str) -> web.Response:
    rt = request.app[RUNTIME]
    scope = await scope_for(rt)
    alert_id = await services.resolve_alert(rt, _id(request), status=status, scope=scope)
    return await _answer(request, alert_id, scope)


async def mark_done(request: web.Request) -> web.Response:
    return await _resolve(request, AlertStatus.DONE)


async def dismiss(request: web.Request) -> web.Response:
    return await _resolve(request, AlertStatus.DISMISSED)


async def send_coupon(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    scope = await scope_for(rt)
    alert_id = _id(request)
    await services.send_coupon(rt, alert_id, scope=scope, source="api")
    return await _answer(request, alert_id, scope)


def setup_routes(app: web.Application) -> None:
    decimal = {"id": "^[0-9]+$"}
    add_api_route(
        app,
        "GET",
        "/repurchase-alerts",
        list_repurchase_alerts,
        summary="复购预警: due reminders and at-risk recall tasks in your data scope, at-risk first, then by predicted date "
        "(status defaults to open; all = every status)",
        response=AlertList,
        parameters=[query("kind", enum=list(KINDS)), query("status", enum=[*ALERT_STATUSES, "all"]), query("owner")],
        errors=(400, 401, 403),
    )
    for verb, handler, what in (
        ("done", mark_done, "Mark an open alert done (the customer was contacted / recalled)"),
        ("dismiss", dismiss, "Dismiss an open alert"),
    ):
        add_api_route(app, "POST", f"/repurchase-alerts/{{id}}/{verb}", handler, summary=what, response=AlertOut,
                      errors=(400, 401, 403, 404, 409), path_pattern=decimal)  # fmt: skip
    add_api_route(
        app,
        "POST",
        "/repurchase-alerts/{id}/coupon",
        send_coupon,
        summary="Send the customer of an open alert the coupon configured for repurchase reminders (once per alert; the "
        "customer is told on the channel that reaches them)",
        response=AlertOut,
        errors=(400, 401, 403, 404, 409),
        path_pattern=decimal,
    )
