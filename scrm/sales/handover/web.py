"""/api/v1/handovers — 交接 (在职转接 / 离职继承): ask for one (202: WeCom hears it from a job), list them, follow one."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar

from aiohttp import web
from pydantic import Field

from scrm.core.errors import InvalidInput
from scrm.core.http.bodies import Body, read_body
from scrm.core.http.keys import RUNTIME
from scrm.core.http.openapi import ApiModel, add_api_route
from scrm.governance.scopes.services import scope_for
from scrm.sales.handover import queries, services
from scrm.sales.handover.domain import HandoverKind, HandoverStatus, TransferStatus


class HandoverIn(Body):
    messages: ClassVar[dict[str, str]] = {
        "from": "from 必须是转出成员的企业微信 userid (from)",
        "to": "to 必须是接替成员的企业微信 userid (to)",
        "kind": "kind 须为 onjob（在职转接）或 resigned（离职继承） (kind)",
        "customers": "customers 必须是客户编号或 external_userid 的数组，最多 5000 个 (customers)",
        "all": "all 必须是 true 或 false (all)",
    }

    from_userid: Annotated[str, Field(alias="from", min_length=1, max_length=64)]
    to_userid: Annotated[str, Field(alias="to", min_length=1, max_length=64)]
    kind: Annotated[str, Field(max_length=16, description="onjob (在职转接) | resigned (离职继承)")] = HandoverKind.ONJOB
    customers: list[Annotated[int, Field(gt=0)] | Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=5000, description="customer ids or external_userids the handover member serves"
    )
    all_customers: bool = Field(False, alias="all", description="every customer the handover member serves (and the groups they own)")


class CustomerTransferOut(ApiModel):
    customer_id: int
    external_userid: str
    name: str
    status: str = Field(description=", ".join(TransferStatus))
    errcode: int | None = Field(description="WeCom's errcode when it refused this customer")
    reason: str
    finished_at: dt.datetime | None


class GroupTransferOut(ApiModel):
    chat_id: str
    name: str
    status: str = Field(description="pending, success, failed")
    errcode: int | None


class HandoverOut(ApiModel):
    id: int
    kind: str = Field(description=", ".join(HandoverKind))
    from_: str = Field(alias="from")
    to: str
    from_name: str
    to_name: str
    status: str = Field(description=", ".join(HandoverStatus))
    requested_by: str
    created_at: dt.datetime
    finished_at: dt.datetime | None
    counts: dict[str, int] = Field(description="customers per status, and total")
    customers: list[CustomerTransferOut] = Field(default_factory=list)
    groups: list[GroupTransferOut] = Field(default_factory=list)


class HandoverList(ApiModel):
    items: list[HandoverOut]


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdecimal() or len(raw) > 18:
        raise InvalidInput("编号必须是数字 (id must be a number)", field="id")
    return int(raw)


async def create_handover(request: web.Request) -> web.Response:
    body = await read_body(request, HandoverIn)
    rt = request.app[RUNTIME]
    view = await services.request_handover(
        rt,
        from_userid=body.from_userid,
        to_userid=body.to_userid,
        kind=body.kind,
        customers=body.customers,
        all_customers=body.all_customers,
        scope=await scope_for(rt),
    )
    return web.json_response(view.to_json(), status=202)


async def list_handovers(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    found = await queries.list_handovers(rt, await scope_for(rt))
    return web.json_response({"items": [h.to_json(detail=False) for h in found]})


async def get_handover(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return web.json_response((await queries.get_handover(rt, _id(request), await scope_for(rt))).to_json())


def setup_routes(app: web.Application) -> None:
    add_api_route(
        app,
        "POST",
        "/handovers",
        create_handover,
        success=202,
        summary="交接: hand a member's customers (listed, or all with their groups) to another member — 在职转接 (onjob) or "
        "离职继承 (resigned). Answers at once with each customer pending; WeCom transfers them in batches of 100 and the "
        "takeover happens after 24 h unless the customer refuses",
        response=HandoverOut,
        request_body=HandoverIn,
        errors=(400, 401, 403, 503),
    )
    add_api_route(app, "GET", "/handovers", list_handovers, summary="Handovers, newest first, with counts per status",
                  response=HandoverList, errors=(401, 403))  # fmt: skip
    add_api_route(app, "GET", "/handovers/{id}", get_handover, summary="One handover's progress: each customer's and group's status",
                  response=HandoverOut, errors=(400, 401, 403, 404), path_pattern={"id": "^[0-9]+$"})  # fmt: skip
