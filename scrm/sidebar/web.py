"""/sidebar/ routes: the page, WeCom OAuth sign-in, the JS-SDK signature, and the JSON API behind the page.

Thin handlers: who may see what is decided in :mod:`scrm.customer360.queries`, orders and tags go through the same
services the chat and the console use, and domain errors leave as JSON with their Chinese message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from bots.outbound.client import WECOM_API, ApiError, ApiUnavailable, Errcode, RateLimited
from bots.sandbox.keys import SANDBOX_STATE
from fulfillment.catalog.services import MAX_LINES, MAX_QTY
from fulfillment.orders.services import create_order
from scrm.campaigns.coupons.services import issue_coupon, list_templates
from scrm.campaigns.referral import sharing
from scrm.core import audit
from scrm.core.errors import Conflict, Forbidden, InvalidInput, ServiceUnavailable, Unauthorized
from scrm.core.http.bodies import get_int, get_str, read_json
from scrm.core.http.keys import RUNTIME, SETTINGS
from scrm.core.money import format_fen
from scrm.crm.staff.domain import SCOPE_OWN
from scrm.crm.staff.services import get_salesperson
from scrm.crm.tags.models import TagSource
from scrm.crm.tags.services import set_customer_tag
from scrm.customer360 import queries as views
from scrm.governance.scopes.services import DataScope, scope_for
from scrm.sales.followups import queries as follow_up_queries
from scrm.sales.followups import services as follow_up_services
from scrm.sales.followups.domain import KIND_NAMES_ZH
from scrm.sales.pipeline import queries as pipeline_queries
from scrm.sales.quotes import services as quotes
from scrm.sales.quotes.domain import STATUS_ZH as QUOTE_STATUS_ZH
from scrm.sales.quotes.domain import QuoteNotFound
from scrm.sales.workday.queries import my_day
from scrm.sidebar import auth, pages
from scrm.sidebar.auth import SidebarSession
from scrm.sidebar.pages import NoticePage, SidebarPage

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"sidebar.js": "application/javascript", "sidebar.css": "text/css"}
EXTERNAL_USERID = re.compile(r"[0-9A-Za-z_-]{1,128}")
CHAT_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
USERID = re.compile(r"[0-9A-Za-z_.@-]{1,64}")
REQUEST_ID = re.compile(r"[0-9A-Za-z_-]{8,64}")

SESSION = web.RequestKey("sidebar_session", SidebarSession)
TICKETS = web.AppKey("sidebar_tickets", auth.TicketCache)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ---- pages ------------------------------------------------------------------------------------------------
def message_page(request: web.Request, title: str, message: str, *, status: int) -> web.Response:
    """A sign-in outcome as a small page (the sidebar is a browser page, not an API client)."""
    return pages.render(request, NoticePage(title=title, message=message), status=status)


def _redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})


async def page(request: web.Request) -> web.StreamResponse:
    """The sidebar page for a signed-in member; anyone else is sent to WeCom OAuth first."""
    settings = request.app[SETTINGS]
    if "as" in request.query:
        return await sandbox_login(request)
    now = request.app[RUNTIME].clock.now()
    if auth.read_session(settings, request.cookies.get(auth.SESSION_COOKIE), now) is None:
        state, nonce = auth.make_state(settings, request.path_qs, now)
        response = _redirect(auth.authorize_url(settings, state))
        auth.set_cookie(request, response, settings, auth.NONCE_COOKIE, nonce, int(auth.STATE_TTL.total_seconds()))
        return response
    return pages.render(request, SidebarPage(sandbox=settings.is_sandbox))


async def to_home(request: web.Request) -> web.StreamResponse:
    return _redirect(auth.HOME + (f"?{request.query_string}" if request.query_string else ""))


async def oauth_callback(request: web.Request) -> web.StreamResponse:
    """WeCom's redirect back: ``?code&state``. The state must be ours, fresh, and started in this browser."""
    settings = request.app[SETTINGS]
    opened = auth.open_state(settings, request.query.get("state", ""), request.app[RUNTIME].clock.now())
    cookie = request.cookies.get(auth.NONCE_COOKIE, "")
    if opened is None or not cookie or not opened[0] == cookie:
        return message_page(request, "登录链接已失效", "请关闭后重新打开侧边栏。(invalid or expired sign-in state)", status=400)
    code = request.query.get("code", "")
    if not code or len(code) > 512:
        return message_page(request, "未获授权", "企业微信没有给出授权码，请重新打开侧边栏。(no code)", status=403)
    return await _login(request, code, opened[1])


async def sandbox_login(request: web.Request) -> web.StreamResponse:
    """Sandbox only: ``?as=<userid>`` signs in as that member of the emulated corp. The emulator issues a real
    OAuth code for them and the sign-in goes through ``auth/getuserinfo`` as in production; non-members fail."""
    settings = request.app[SETTINGS]
    if not settings.is_sandbox or SANDBOX_STATE not in request.app:
        raise web.HTTPNotFound(text="没有这个页面 (not found)")
    userid = request.query.get("as", "")
    if not USERID.fullmatch(userid):
        return message_page(request, "无法登录", "as 参数需为成员 userid。(as must be a member userid)", status=400)
    code = request.app[SANDBOX_STATE].issue_oauth_code(userid)
    return await _login(request, code, auth.safe_return_path(request.path_qs))


async def _login(request: web.Request, code: str, return_path: str) -> web.StreamResponse:
    settings, rt = request.app[SETTINGS], request.app[RUNTIME]
    if not rt.has(WECOM_API):
        return message_page(request, "未配置企业微信", "服务器尚未配置企业微信应用，侧边栏无法登录。(WeCom not configured)", status=503)
    try:
        answer = await rt.get(WECOM_API).call("auth/getuserinfo", params={"code": code}, method="GET")
    except RateLimited:
        return message_page(request, "请稍后再试", "企业微信接口繁忙，请稍后重新打开侧边栏。(rate limited)", status=503)
    except ApiError as exc:
        if exc.errcode == Errcode.INVALID_OAUTH_CODE:
            return message_page(request, "登录码已失效", "授权码无效或已使用，请重新打开侧边栏。(invalid code)", status=401)
        log.warning("sidebar sign-in: getuserinfo refused", extra={"errcode": exc.errcode})
        return message_page(request, "无法登录", f"企业微信拒绝了登录请求（错误码 {exc.errcode}）。", status=502)
    except ApiUnavailable:
        return message_page(request, "请稍后再试", "暂时连不上企业微信，请稍后重新打开侧边栏。(WeCom unavailable)", status=503)
    userid = auth.userid_of(answer)
    if userid is None:
        return message_page(request, "无权使用", "侧边栏仅限本企业成员使用。(members only)", status=403)
    async with rt.db.read() as conn:
        member = await get_salesperson(conn, userid)
    if member is not None and not member.active:
        return message_page(request, "无权使用", "该成员已停用，无法使用侧边栏。(member deactivated)", status=403)
    _, value = auth.issue_session(settings, userid, rt.clock.now())
    response = _redirect(return_path)
    auth.set_cookie(request, response, settings, auth.SESSION_COOKIE, value, int(auth.SESSION_TTL.total_seconds()))
    auth.clear_cookie(response, auth.NONCE_COOKIE)
    log.info("sidebar sign-in", extra={"userid": userid})
    return response


async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name == pages.SANDBOX_SDK and request.app[SETTINGS].is_sandbox:
        content_type = "application/javascript"
    elif name in STATIC_FILES:
        content_type = STATIC_FILES[name]
    else:
        raise web.HTTPNotFound(text="没有这个文件 (not found)")
    return web.FileResponse(STATIC_DIR / name, headers={"Content-Type": content_type, "Cache-Control": "no-cache"})


# ---- the JSON API -----------------------------------------------------------------------------------------
def api(handler: Handler) -> Handler:
    """A valid session (else 401) and, on POST, its CSRF token in the X-CSRF-Token header (else 403)."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        settings, rt = request.app[SETTINGS], request.app[RUNTIME]
        session = auth.read_session(settings, request.cookies.get(auth.SESSION_COOKIE), rt.clock.now())
        if session is None:
            raise Unauthorized("登录已失效，请重新打开侧边栏 (sign in again)")
        if request.method == "POST" and not auth.check_csrf(settings, session, request.headers.get(auth.CSRF_HEADER)):
            raise Forbidden("请求来源无法验证，请刷新侧边栏后重试 (missing or invalid CSRF token)")
        async with rt.db.read() as conn:
            member = await get_salesperson(conn, session.userid)
        if member is not None and not member.active:
            raise Unauthorized("该成员已停用 (member deactivated)")
        request[SESSION] = session
        name = member.name if member is not None else ""
        audit.set_request_actor(audit.Actor("sidebar", session.userid, name))
        response = await handler(request)
        response.headers["Cache-Control"] = "no-store"
        return response

    guarded.__name__ = getattr(handler, "__name__", "guarded")
    return guarded


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


async def me(request: web.Request) -> web.Response:
    settings, rt = request.app[SETTINGS], request.app[RUNTIME]
    session = request[SESSION]
    async with rt.db.read() as conn:
        member = await get_salesperson(conn, session.userid)
    return _json(
        {
            "userid": session.userid,
            "name": member.display_name if member else session.userid,
            "csrf_token": auth.csrf_token(settings, session),
            "sandbox": settings.is_sandbox,
        }
    )


async def jsapi_signature(request: web.Request) -> web.Response:
    """What ``wx.agentConfig`` needs for the page at ``url`` (signed with the app's agent_config ticket)."""
    settings, rt = request.app[SETTINGS], request.app[RUNTIME]
    url = request.query.get("url", "")
    if not url.startswith(("http://", "https://")) or len(url) > 2048:
        raise InvalidInput("url 必须是当前页面的完整地址 (url must be the page's absolute URL)", field="url")
    if not rt.has(WECOM_API):
        raise ServiceUnavailable("服务器尚未配置企业微信应用 (WeCom is not configured)")
    try:
        ticket = await request.app[TICKETS].get(rt.get(WECOM_API), rt.clock.now())
    except (ApiError, ApiUnavailable) as exc:
        log.warning("sidebar: agent_config ticket unavailable", extra={"error": str(exc)})
        raise ServiceUnavailable("暂时无法获取企业微信签名，请稍后重试 (ticket unavailable)") from None
    timestamp, nonce = rt.clock.timestamp(), auth.nonce_str()
    return _json(
        {
            "corpid": settings.wecom_corp_id,
            "agentid": settings.wecom_agent_id,
            "timestamp": timestamp,
            "nonceStr": nonce,
            "signature": auth.jsapi_signature(ticket, nonce, timestamp, url),
        }
    )


async def _my_customer(request: web.Request) -> int:
    external_userid = request.match_info["external_userid"]
    rt = request.app[RUNTIME]
    customer_id = None
    if EXTERNAL_USERID.fullmatch(external_userid):
        async with rt.db.read() as conn:
            customer_id = await views.followed_customer(conn, request[SESSION].userid, external_userid)
    if customer_id is None:
        # The same answer for someone else's customer and for none at all: nothing leaks.
        raise Forbidden("您不是该客户的跟进人，无权查看 (not a customer you follow)")
    return customer_id


async def customer(request: web.Request) -> web.Response:
    customer_id = await _my_customer(request)
    rt = request.app[RUNTIME]
    return _json(await views.customer_360(rt, request[SESSION].userid, customer_id, request.match_info["external_userid"]))


async def change_tag(request: web.Request) -> web.Response:
    """``{"tag_id": 3, "op": "add"|"remove"}`` — the tag's source becomes manual with the salesperson as evidence."""
    customer_id = await _my_customer(request)
    data = await read_json(request)
    tag_id = get_int(data, "tag_id", minimum=1)
    op = data.get("op", "add")
    if op not in ("add", "remove"):
        raise InvalidInput("op 只能是 add 或 remove (op must be add or remove)", field="op")
    rt, userid = request.app[RUNTIME], request[SESSION].userid
    changed = await set_customer_tag(
        rt, customer_id=customer_id, tag_id=tag_id, add=op == "add", source=TagSource.MANUAL, evidence={"by": userid}, by=userid
    )
    async with rt.db.read() as conn:
        tags = await views.customer_tags_json(conn, customer_id)
    return _json({"changed": changed, "tags": tags})


async def add_note(request: web.Request) -> web.Response:
    customer_id = await _my_customer(request)
    data = await read_json(request)
    body = get_str(data, "body", max_len=views.NOTE_MAX)
    note = await views.add_note(request.app[RUNTIME], customer_id=customer_id, author=request[SESSION].userid, body=body)
    return _json({"note": note}, status=201)


async def home(request: web.Request) -> web.Response:
    """我的一天: this member's follow-ups due, repurchase and churn alerts, new leads, overdue invoices."""
    scope = DataScope(SCOPE_OWN, frozenset({request[SESSION].userid}))
    return _json((await my_day(request.app[RUNTIME], scope)).to_json())


async def customer_follow_ups(request: web.Request) -> web.Response:
    customer_id = await _my_customer(request)
    rt = request.app[RUNTIME]
    async with rt.db.read() as conn:
        found = await follow_up_queries.history(conn, customer_id=customer_id, limit=30)
    return _json({"follow_ups": [{**f.to_json(), "kind_zh": f.kind_zh} for f in found], "kinds": KIND_NAMES_ZH})


async def add_follow_up(request: web.Request) -> web.Response:
    """``{"kind", "body", "next_contact_on"?: "YYYY-MM-DD"}`` on this customer, by the member signed in."""
    customer_id = await _my_customer(request)
    data = await read_json(request)
    raw_day = data.get("next_contact_on") or None
    day = None
    if raw_day is not None:
        try:
            day = dt.date.fromisoformat(str(raw_day))
        except ValueError:
            raise InvalidInput("下次联系日期格式应为 年-月-日 (next_contact_on)", field="next_contact_on") from None
    new = follow_up_services.NewFollowUp(
        kind=str(data.get("kind") or "note"), body=get_str(data, "body", max_len=2000), customer_id=customer_id, next_contact_on=day
    )
    made = await follow_up_services.record_follow_up(request.app[RUNTIME], new)
    return _json({"follow_up": {**made.to_json(), "kind_zh": made.kind_zh}}, status=201)


async def follow_up_done(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    if not raw.isdecimal() or len(raw) > 18:
        raise InvalidInput("编号必须是数字 (id)", field="id")
    done = await follow_up_services.complete_follow_up(request.app[RUNTIME], int(raw))
    return _json({"follow_up": done.to_json()})


def _items(data: dict[str, Any]) -> list[tuple[str, int]]:
    raw = data.get("items")
    if raw is None and "sku" in data:
        raw = [{"sku": data.get("sku"), "qty": data.get("qty")}]
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_LINES:
        raise InvalidInput(f"请选择 1 到 {MAX_LINES} 种商品 (items: 1–{MAX_LINES} lines)", field="items")
    items = []
    for item in raw:
        if not isinstance(item, dict):
            raise InvalidInput("商品行格式不对 (each item is {sku, qty})", field="items")
        items.append((get_str(item, "sku", max_len=64), get_int(item, "qty", minimum=1, maximum=MAX_QTY)))
    return items


async def place_order(request: web.Request) -> web.Response:
    """``{"items": [{"sku", "qty"}], "request_id"}``: create and confirm an order for this customer through the
    same service as the chat (stock allocated, customer notified). A repeated request_id returns the same order."""
    customer_id = await _my_customer(request)
    data = await read_json(request)
    items = _items(data)
    request_id = data.get("request_id")
    if request_id is not None and (not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id)):
        raise InvalidInput("request_id 格式不对 (request_id: 8–64 letters, digits, _ or -)", field="request_id")
    rt, userid = request.app[RUNTIME], request[SESSION].userid
    # Scoped to the salesperson, so nobody can fetch another's order by guessing a request id.
    ref = "sidebar:" + hashlib.sha256(f"{userid}\n{request_id}".encode()).hexdigest()[:40] if request_id else None

    async def create() -> Any:
        return await create_order(
            rt, customer_id=customer_id, items=items, source="sidebar", salesperson_userid=userid, actor=userid, confirm=True, ref=ref
        )

    try:
        order = await create()
    except sa.exc.IntegrityError:
        if ref is None:
            raise
        order = await create()  # the same request_id raced in twice: the second finds the first's order
    if order.customer_id != customer_id:
        raise Conflict("request_id 已用于另一位客户的订单 (request_id already used)", field="request_id")
    return _json({"order": views.order_json(order)}, status=201)


async def coupon_templates(request: web.Request) -> web.Response:
    templates = await list_templates(request.app[RUNTIME], active=True)
    return _json({"templates": [{"id": t.id, "name": t.name, "label": t.rule.label} for t in templates]})


async def send_coupon(request: web.Request) -> web.Response:
    """``{"template_id", "request_id"}``: give this customer one coupon (budgets and limits apply; a repeated
    request_id gives the same coupon)."""
    customer_id = await _my_customer(request)
    data = await read_json(request)
    template_id = get_int(data, "template_id", minimum=1)
    request_id = data.get("request_id")
    if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
        raise InvalidInput("request_id 格式不对 (request_id: 8–64 letters, digits, _ or -)", field="request_id")
    userid = request[SESSION].userid
    # Scoped to salesperson and customer: a retry gives the same coupon, never another customer's.
    ref = "sidebar-coupon:" + hashlib.sha256(f"{userid}\n{customer_id}\n{request_id}".encode()).hexdigest()[:40]
    coupon = await issue_coupon(request.app[RUNTIME], template_id, customer_id, source="sidebar", source_ref=ref, actor=userid)
    return _json({"coupon": {"code": coupon.code, "name": coupon.name, "label": coupon.label, "status": coupon.status}}, status=201)


async def referral_campaigns(request: web.Request) -> web.Response:
    """The referral campaigns running now (newest first): what the 邀请海报 button can send."""
    running = await sharing.running_campaigns(request.app[RUNTIME])
    return _json({"campaigns": [{"id": c.id, "name": c.name, "goal": c.goal} for c in running]})


async def referral_invitation(request: web.Request) -> web.Response:
    """``{"campaign_id"}``: this customer's invitation to the campaign — their code (made once, then the same), the
    poster's link and the text — for the page to send into the chat (JS-SDK sendChatMessage, a news card)."""
    customer_id = await _my_customer(request)
    data = await read_json(request)
    campaign_id = get_int(data, "campaign_id", minimum=1)
    found = await sharing.invitation(request.app[RUNTIME], campaign_id, customer_id)
    log.info("sidebar referral poster", extra={"userid": request[SESSION].userid, "campaign_id": campaign_id, "code_id": found.code.id})
    return _json(
        {
            "campaign": {"id": found.campaign.id, "name": found.campaign.name},
            "poster_url": found.poster_url,
            "title": f"【{found.campaign.name}】您的专属邀请海报",
            "desc": found.reward,
            "text": found.text,
        },
        status=201,
    )


# ---- 商机与报价: this customer's opportunities and quotes (the salesperson's own), the quote link for the chat ----
async def customer_sales(request: web.Request) -> web.Response:
    """This customer's opportunities and quotes that the signed-in salesperson owns, newest first."""
    customer_id = await _my_customer(request)
    rt = request.app[RUNTIME]
    scope = await scope_for(rt)
    found = await pipeline_queries.list_opportunities(rt, scope, pipeline_queries.Filters(customer_id=customer_id), limit=50)
    quoted = await quotes.list_quotes(rt, scope, customer_id=customer_id, limit=50)
    return _json(
        {
            "opportunities": [
                {"id": o.id, "title": o.title, "stage_name": o.stage_name, "amount_fen": o.amount_fen, "probability": o.probability,
                 "expected_close_on": o.expected_close_on.isoformat() if o.expected_close_on else None, "closed": o.closed}
                for o in found
            ],
            "quotes": [
                {"id": q.id, "number": q.number, "status": q.status, "status_zh": QUOTE_STATUS_ZH.get(q.status, q.status),
                 "total_fen": q.total_fen, "valid_until": q.valid_until.isoformat(), "expired": q.expired, "sendable": q.sendable,
                 "acceptable": q.acceptable, "order_number": q.order_number, "opportunity_id": q.opportunity_id}
                for q in quoted
            ],
        }
    )  # fmt: skip


async def _my_quote(request: web.Request, customer_id: int) -> quotes.QuoteView:
    """``{"quote_id"}`` of the body: one of this customer's quotes the salesperson owns (else 403, as for a customer)."""
    rt = request.app[RUNTIME]
    quote_id = get_int(await read_json(request), "quote_id", minimum=1, maximum=10**15)
    try:
        found = await quotes.get_quote(rt, quote_id, scope=await scope_for(rt))
    except QuoteNotFound:
        found = None
    if found is None or found.customer_id != customer_id:
        raise Forbidden("这不是您为该客户开的报价单 (not your quote for this customer)")
    return found


async def quote_link(request: web.Request) -> web.Response:
    """``{"quote_id"}``: the quote's page for the customer (a signed link) and the news card to send into the chat;
    a quote waiting for approval, expired or closed cannot be sent (409 with the reason)."""
    customer_id = await _my_customer(request)
    found = await _my_quote(request, customer_id)
    quotes.assert_sendable(found)
    url = quotes.share_url(request.app[RUNTIME], found)
    log.info("sidebar quote link", extra={"userid": request[SESSION].userid, "quote": found.number})
    return _json(
        {
            "url": url,
            "title": f"报价单 {found.number}",
            "desc": f"合计 {format_fen(found.total_fen)}，有效期至 {found.valid_until.isoformat()}，点开可查看并确认",
            "text": f"您好，这是为您准备的报价单 {found.number}（合计 {format_fen(found.total_fen)}，"
            f"有效期至 {found.valid_until.isoformat()}），点开可查看、打印并在线确认：{url}",
        },
        status=201,
    )


async def quote_acceptance(request: web.Request) -> web.Response:
    """``{"quote_id"}``: the customer agreed in the chat — accept it for them (an order through the same service;
    pressed twice, the same order)."""
    customer_id = await _my_customer(request)
    found = await _my_quote(request, customer_id)
    order, _ = await quotes.accept_quote(request.app[RUNTIME], found.id, actor=request[SESSION].userid)
    return _json({"order": views.order_json(order)}, status=201)


async def group(request: web.Request) -> web.Response:
    chat_id = request.match_info["chat_id"]
    rt, userid = request.app[RUNTIME], request[SESSION].userid
    allowed = False
    if CHAT_ID.fullmatch(chat_id):
        async with rt.db.read() as conn:
            allowed = await views.may_see_group(conn, userid, chat_id)
    if not allowed:
        raise Forbidden("您不在该客户群中，无权查看 (not a group you own or are in)")
    return _json(await views.group_view(rt, userid, chat_id))


async def tag_catalogue(request: web.Request) -> web.Response:
    return _json({"tags": await views.available_tags(request.app[RUNTIME])})


async def products(request: web.Request) -> web.Response:
    return _json({"products": await views.order_products(request.app[RUNTIME])})


# ---- wiring -----------------------------------------------------------------------------------------------
API_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/sidebar/api/me", me),
    ("GET", "/sidebar/api/home", home),
    ("GET", "/sidebar/api/customers/{external_userid}/follow-ups", customer_follow_ups),
    ("POST", "/sidebar/api/customers/{external_userid}/follow-ups", add_follow_up),
    ("POST", "/sidebar/api/follow-ups/{id}/done", follow_up_done),
    ("GET", "/sidebar/api/jsapi-signature", jsapi_signature),
    ("GET", "/sidebar/api/customers/{external_userid}", customer),
    ("POST", "/sidebar/api/customers/{external_userid}/tags", change_tag),
    ("POST", "/sidebar/api/customers/{external_userid}/notes", add_note),
    ("POST", "/sidebar/api/customers/{external_userid}/orders", place_order),
    ("POST", "/sidebar/api/customers/{external_userid}/coupons", send_coupon),
    ("GET", "/sidebar/api/coupon-templates", coupon_templates),
    ("GET", "/sidebar/api/referral-campaigns", referral_campaigns),
    ("POST", "/sidebar/api/customers/{external_userid}/referral-invitation", referral_invitation),
    ("GET", "/sidebar/api/customers/{external_userid}/sales", customer_sales),
    ("POST", "/sidebar/api/customers/{external_userid}/quote-link", quote_link),
    ("POST", "/sidebar/api/customers/{external_userid}/quote-acceptance", quote_acceptance),
    ("GET", "/sidebar/api/groups/{chat_id}", group),
    ("GET", "/sidebar/api/tags", tag_catalogue),
    ("GET", "/sidebar/api/products", products),
]


def setup_routes(app: web.Application) -> None:
    """Mount /sidebar/. Safe to call twice (the second call does nothing), so tests may mount it on an app that
    already has it."""
    if pages.TEMPLATES in app:
        return
    app[pages.TEMPLATES] = pages.environment()
    app[TICKETS] = auth.TicketCache()
    app.router.add_get("/sidebar", to_home)
    app.router.add_get("/sidebar/", page)
    app.router.add_get("/sidebar/oauth", oauth_callback)
    app.router.add_get("/sidebar/static/{name}", static_file)
    for method, path, handler in API_ROUTES:
        app.router.add_route(method, path, api(handler))
