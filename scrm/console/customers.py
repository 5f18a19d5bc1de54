"""/console/customers: the customer directory (客户) for every signed-in staff role — search by name, identity or
``#id``, filter with the segment language (the same one campaigns target), and one customer's full record
(identities, salespeople, tags and why, activity and RFM, orders, balance due, groups, notes, timeline).

Same building blocks as the other console pages: routes behind :func:`auth.protected`, templates under
``templates/customers/`` (autoescaped), the shared layout. Reads come from :mod:`scrm.customer360.directory`, which the
API shares.
"""

from __future__ import annotations

from collections.abc import Collection

from aiohttp import web

from scrm.console import auth, pages
from scrm.console.pages import act, actor, page_context, read_form, render
from scrm.core.errors import DomainError, InvalidInput, NotFound
from scrm.core.http.keys import RUNTIME
from scrm.crm.customers.services import NOTE_MAX_CHARS, add_note, set_custom_fields
from scrm.crm.tags.services import set_customer_tag
from scrm.customer360.directory import customer_record_view, search_customers, surviving_customer
from scrm.customer360.queries import available_tags
from scrm.governance.scopes.services import customer_in_scope, scope_for

IDENTITY_ZH = {"external_userid": "企业微信外部联系人", "openid": "公众号 openid", "unionid": "unionid"}
SEGMENT_HINT = "例：tag:意向-高 and rfm:重要价值客户 and last_active < 30d"


def customer_url(customer_id: int) -> str:
    return f"/console/customers/{int(customer_id)}"


def display_name(name: str, customer_id: int) -> str:
    return name or f"未命名客户 #{customer_id}"


# ---- routes -------------------------------------------------------------------------------------------------------
async def customers_list(request: web.Request) -> web.Response:
    ctx = page_context(request, "customers")
    q = request.query.get("q", "")[:64]
    segment = request.query.get("segment", "")[:2000]
    raw_page = request.query.get("page", "1")
    page = int(raw_page) if raw_page.isdecimal() and len(raw_page) < 6 else 1
    try:
        result = await search_customers(request.app[RUNTIME], q=q, expression=segment, page=page)
    except DomainError as exc:  # a bad expression: the form again with the reason (column), nothing else shown
        return render(
            request,
            "customers/list.html",
            ctx,
            http_status=400,
            result=None,
            q=q,
            segment=segment,
            hint=SEGMENT_HINT,
            error=exc.message,
            scope_text="",
        )
    scope = await scope_for(request.app[RUNTIME])
    scope_text = "" if scope.everything else scope.describe()
    return render(
        request, "customers/list.html", ctx, result=result, q=q, segment=segment, hint=SEGMENT_HINT, error="", scope_text=scope_text
    )


async def customer_view(request: web.Request) -> web.Response:
    ctx = page_context(request, "customers")
    try:
        record = await customer_record_view(request.app[RUNTIME], _customer_id(request))
    except NotFound as exc:
        return render(request, "not_found.html", ctx, http_status=404, title="没有找到客户", message=exc.message)
    if record.merged_from is not None:  # an old id (merged away): the surviving record's own address
        return web.Response(status=303, headers={"Location": customer_url(record.id)})
    catalogue = await available_tags(request.app[RUNTIME])
    applied = {g.tag_id for g in record.tags}
    return render(
        request,
        "customers/detail.html",
        ctx,
        record=record,
        identities=[(kind, value) for kind, values in record.identities.items() for value in values],
        addable=[x for x in catalogue if x["tag_id"] not in applied],
        fields=sorted(record.custom_fields.items()),
        group_names="、".join(g.name or g.chat_id for g in record.groups),
        identity_zh=IDENTITY_ZH,
        note_max=NOTE_MAX_CHARS,
    )


def _customer_id(request: web.Request) -> int:
    return pages.path_id(request, "customer_id", what="客户")


async def _existing(request: web.Request) -> int:
    """The customer the form is about (its surviving record), if in the person's data scope; NotFound otherwise."""
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        found = await surviving_customer(conn, _customer_id(request))
    if not await customer_in_scope(rt, await scope_for(rt), found):
        raise NotFound(f"没有这个客户：#{found}")
    return found


async def customer_tag(request: web.Request) -> web.Response:
    """Add or remove one tag (mirrored tags reach WeCom through the outbox, like the sidebar's)."""
    form = await read_form(request)
    rt = request.app[RUNTIME]
    back = customer_url(_customer_id(request))

    async def action() -> str:
        cid = await _existing(request)
        raw = form.get("tag_id", "")
        if not raw.isdecimal() or len(raw) > 18:
            raise InvalidInput("请选择标签", field="tag_id")
        add = form.get("action") != "remove"
        by = actor(request)[:64]
        changed = await set_customer_tag(rt, customer_id=cid, tag_id=int(raw), add=add, evidence={"by": by} if add else {}, by=by)
        if not changed:
            return "标签没有变化"
        return "已打上标签" if add else "已移除标签"

    return await act(request, back, action)


async def customer_note(request: web.Request) -> web.Response:
    form = await read_form(request)
    back = customer_url(_customer_id(request))

    async def action() -> str:
        await add_note(request.app[RUNTIME], await _existing(request), actor(request)[:64], form.get("body", ""))
        return "已添加备注"

    return await act(request, back, action)


async def customer_fields(request: web.Request) -> web.Response:
    """Set one custom field (``key`` + ``value``; an empty value removes it)."""
    form = await read_form(request)
    rt = request.app[RUNTIME]
    back = customer_url(_customer_id(request))

    async def action() -> str:
        cid = await _existing(request)
        key = form.get("key", "").strip()
        value = form.get("value", "").strip()
        if not key:
            raise InvalidInput("请填写字段名", field="key")
        async with rt.db.write() as conn:
            await set_custom_fields(conn, cid, {key: value or None}, rt.clock.now())
        return f"已保存字段“{key}”" if value else f"已删除字段“{key}”"

    return await act(request, back, action)


def setup_routes(app: web.Application, *, roles: Collection[str] = auth.ALL_ROLES) -> None:
    """Mount the directory behind the console's session + role guard (every staff role works with customers)."""
    pages.setup_templates(app)
    for method, path, handler in (
        ("GET", "/console/customers", customers_list),
        ("GET", "/console/customers/{customer_id}", customer_view),
        ("POST", "/console/customers/{customer_id}/tags", customer_tag),
        ("POST", "/console/customers/{customer_id}/notes", customer_note),
        ("POST", "/console/customers/{customer_id}/fields", customer_fields),
    ):
        app.router.add_route(method, path, auth.protected(handler, roles=roles, forbidden_page=pages.forbidden))
