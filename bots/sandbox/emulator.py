"""The sandbox emulator as an aiohttp app: WeCom and Official Account APIs, control routes, the chat page.

Mounted with ``app.add_subapp("/sandbox/", create_emulator_app(state))``:

* ``/sandbox/wecom/cgi-bin/<path>`` and ``/sandbox/mp/cgi-bin/<path>`` — the APIs (answers as the real
  hosts give: HTTP 200 with ``errcode``); an unknown path answers HTTP 404.
* ``POST|DELETE /sandbox/api/faults`` — inject / clear faults (``{"path","errcode","times","delay"}``): the next
  ``times`` calls of ``path`` answer ``errcode`` after ``delay`` s, or — errcode 0 — are carried out and answered
  ``delay`` s late (past the client's timeout: it cannot tell that the call took effect).
* ``POST /sandbox/api/kf/customer-message`` and ``GET /sandbox/api/kf/conversation`` — the chat page's
  backend; ``"deliver": false`` only logs the message and returns the callback ``token``, for a caller (the
  fault tests' load driver) that delivers the ``kf_msg_or_event`` callback itself, as often as it likes.
* ``POST /sandbox/api/contacts/customer-added`` — a customer adds a member (客户联系): returns what the
  add_external_contact callback carries (with a fresh single-use WelcomeCode); the caller delivers it.
* ``GET /sandbox/api/tester/options``, ``POST /sandbox/api/tester/{action}`` — the chat page's 企业微信事件 buttons (add /
  delete a salesperson, join / leave a group, scan a channel code), ``/sandbox/qr/contact-way/{config_id}.png`` and
  ``/sandbox/scan/{config_id}`` — channel codes' QR images and the page they open (``bots/sandbox/tester_web.py``).
* ``POST /sandbox/api/transfers/refuse`` (``{"external_userid"}``: the customer refuses the waiting transfer; the product
  hears transfer_fail customer_refused), ``POST /sandbox/api/transfers/settle`` (transfers whose 24 h passed on the
  clock are taken over; the callbacks WeCom sends for them are delivered), ``GET /sandbox/api/transfers``,
  ``POST /sandbox/api/members/depart`` (``{"userid"}``: the member leaves the corp — 离职).
* ``POST /sandbox/api/tokens/expire`` — every access token issued so far expires now (calls with one answer 42001).
* ``GET /sandbox/api/traffic`` — everything the product sent (kf messages, app messages, welcome messages,
  template and customer-service messages, mass-message tasks, uploaded media) and the count of API calls per path.
* ``GET /sandbox/api/media/{media_id}`` — the bytes of an uploaded picture (media/upload), for the chat page.
* ``GET /sandbox/connect/oauth2/authorize`` — WeCom's OAuth page (``&userid=`` picks the signed-in member);
  ``POST /sandbox/api/jssdk/agent-config`` — the ``wx.agentConfig`` signature check (for the sidebar's stand-in SDK).
* ``/sandbox/`` — the chat page; ``/sandbox/static/…`` — its files.

The control routes are unauthenticated: the emulator exists only in sandbox mode.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import html
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from bots.gateway.crypto import parse_query
from bots.sandbox import (
    approval_endpoints,
    contact_endpoints,
    group_endpoints,
    mp_endpoints,
    simulator,
    transfer_endpoints,
    wecom_endpoints,
)
from bots.sandbox.endpoints import Call, Endpoint, UploadedFile, dispatch, error_answer
from bots.sandbox.entities import KfNotice
from bots.sandbox.group_simulator import customer_joins_group, member_leaves_group
from bots.sandbox.scan_simulator import customer_scans
from bots.sandbox.state import SandboxState
from bots.sandbox.tester_web import setup_tester_routes

log = logging.getLogger(__name__)

STATE = web.AppKey("sandbox_state", SandboxState)
STATIC_DIR = Path(__file__).resolve().parent / "static"
WECOM_ROUTES: dict[str, Endpoint] = {
    **wecom_endpoints.ROUTES,
    **contact_endpoints.ROUTES,
    **group_endpoints.ROUTES,
    **approval_endpoints.ROUTES,
    **transfer_endpoints.ROUTES,
}
MP_ROUTES: dict[str, Endpoint] = dict(mp_endpoints.ROUTES)
DATA_FORMAT_ERROR = 47001  # body is not a JSON object
EXTERNAL_USERID = re.compile(r"[0-9A-Za-z_-]{1,64}")
MAX_TEXT_BYTES = 2048
HOOK_TIMEOUT = 10.0  # seconds

_dumps = functools.partial(json.dumps, ensure_ascii=False)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _bad_request(message: str) -> web.Response:
    return _json({"error": {"code": "bad_request", "message": message}}, status=400)


def _api_view(api: str, table: Mapping[str, Endpoint]) -> Handler:
    async def view(request: web.Request) -> web.Response:
        state = request.app[STATE]
        path = request.match_info["path"]
        if path not in table:
            return _json({"errcode": 404, "errmsg": f"no such API in the sandbox: {path}"}, status=404)
        state.calls.append(f"{api}:{path}")
        fault = state.take_fault(api, path)
        if fault is not None and fault.errcode:
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)
            return _json(error_answer(fault.errcode))
        answer = await _answer(request, state, api, path, table)
        if fault is not None and fault.delay > 0:
            # A slow answer to a call that was carried out (the worst case for the caller: after its timeout it
            # cannot tell whether the call took effect). The effect happens first, whatever the client does.
            await asyncio.sleep(fault.delay)
        return answer

    return view


async def _answer(request: web.Request, state: SandboxState, api: str, path: str, table: Mapping[str, Endpoint]) -> web.Response:
    """Carry out one API call on the state and answer as the real host does."""
    query = parse_query(request.query_string)  # keeps a literal "+" (aiohttp's request.query would make it a space)
    if request.content_type == "multipart/form-data":  # media/upload
        files: dict[str, UploadedFile] = {}
        for name, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                with value.file:  # aiohttp spools uploads to a temporary file and leaves it open
                    files[name] = UploadedFile(value.filename, value.content_type, value.file.read())
        return _json(dispatch(state, api, path, Call(query, {}, files), table))
    body: Any = {}
    raw = await request.read()
    if raw.strip():
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _json(error_answer(DATA_FORMAT_ERROR, "data format error"))
    return _json(dispatch(state, api, path, Call(query, body), table))


async def _json_body(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def add_fault(request: web.Request) -> web.Response:
    body = await _json_body(request)
    if body is None or not isinstance(body.get("path"), str) or not isinstance(body.get("errcode", 0), int):
        return _bad_request('expected {"path": str, "errcode": int, "times": int, "delay": seconds}')
    try:
        request.app[STATE].inject(body["path"], body.get("errcode", 0), int(body.get("times", 1)), float(body.get("delay", 0)))
    except (TypeError, ValueError):
        return _bad_request("times must be an integer and delay a number")
    return _json({"ok": True})


async def clear_faults(request: web.Request) -> web.Response:
    request.app[STATE].clear_faults()
    return _json({"ok": True})


async def customer_message(request: web.Request) -> web.Response:
    """The page's customer writes: append to the kf log, then tell the product (``state.on_kf_message``)."""
    state = request.app[STATE]
    body = await _json_body(request)
    if body is None:
        return _bad_request('expected {"external_userid", "name", "text"}')
    ext, name, text = body.get("external_userid"), body.get("name") or "", body.get("text")
    if not isinstance(ext, str) or not EXTERNAL_USERID.fullmatch(ext):
        return _bad_request("external_userid must be 1-64 letters, digits, _ or -")
    if not isinstance(name, str) or len(name) > 64:
        return _bad_request("name must be a string of at most 64 characters")
    if not isinstance(text, str) or not text.strip() or len(text.encode("utf-8")) > MAX_TEXT_BYTES:
        return _bad_request("text must be 1 to 2048 bytes")
    # The page's 昵称 is the customer's WeChat nickname: a new customer gets it (or 微信用户), a known one whose
    # nickname changed takes the new one — what kf/customer/batchget then answers.
    nickname = name.strip() or (None if ext in state.customers else "微信用户")
    msg = state.customer_kf_message(ext, text, name=nickname)
    if body.get("deliver", True) is False:
        return _json({"ok": True, "msgid": msg["msgid"], "delivered": False, "open_kfid": msg["open_kfid"], "token": state.kf_sync_token()})
    delivered = False
    if state.on_kf_message is not None:
        notice = KfNotice(msg["open_kfid"], state.kf_sync_token(), msg)
        try:
            # WeCom gives up on a callback after 5 s; a hung product must not hang the page either.
            async with asyncio.timeout(HOOK_TIMEOUT):
                await state.on_kf_message(notice)
            delivered = True
        except Exception:
            # The message stays in the log; the product's periodic sync sweep will still pick it up.
            log.exception("sandbox: kf_msg_or_event callback could not be delivered")
    return _json({"ok": True, "msgid": msg["msgid"], "delivered": delivered})


async def group_join(request: web.Request) -> web.Response:
    """A customer scans a 加入群聊 code: ``{"config_id", "external_userid", "name", "chat_id"?}`` → they join the
    group with the way's state, and the product is told (change_external_chat add_member, JoinScene 3)."""

    state = request.app[STATE]
    body = await _json_body(request)
    if body is None:
        return _bad_request('expected {"config_id", "external_userid", "name"}')
    ext, name, config_id, chat_id = body.get("external_userid"), body.get("name") or "微信用户", body.get("config_id"), body.get("chat_id")
    if not isinstance(ext, str) or not EXTERNAL_USERID.fullmatch(ext) or not isinstance(name, str) or len(name) > 64:
        return _bad_request("external_userid must be 1-64 letters, digits, _ or -; name at most 64 characters")
    if not isinstance(config_id, str) or config_id not in state.join_ways:
        return _bad_request("config_id is no join way of this sandbox")
    try:
        async with asyncio.timeout(HOOK_TIMEOUT):
            joined = await customer_joins_group(state, config_id, ext, name, chat_id=chat_id if isinstance(chat_id, str) else None)
    except (ValueError, LookupError) as exc:
        return _bad_request(str(exc))
    return _json({"ok": True, **joined})


async def group_leave(request: web.Request) -> web.Response:
    """``{"chat_id", "userid", "quit_scene"?}``: the member leaves (0) or is removed (1); the product is told."""

    state = request.app[STATE]
    body = await _json_body(request)
    chat_id, userid = (body or {}).get("chat_id"), (body or {}).get("userid")
    scene = (body or {}).get("quit_scene", 0)
    if not isinstance(chat_id, str) or chat_id not in state.groups or not isinstance(userid, str) or scene not in (0, 1):
        return _bad_request('expected {"chat_id" (a sandbox group), "userid", "quit_scene": 0|1}')
    try:
        async with asyncio.timeout(HOOK_TIMEOUT):
            left = await member_leaves_group(state, chat_id, userid, quit_scene=scene)
    except KeyError as exc:
        return _bad_request(str(exc))
    return _json({"ok": True, **left})


async def customer_added(request: web.Request) -> web.Response:
    """A customer adds member ``userid`` (scans their code): returns the add_external_contact callback's fields."""
    state: SandboxState = request.app[STATE]
    body = await _json_body(request) or {}
    userid, ext, name = body.get("userid"), body.get("external_userid"), body.get("name") or "微信用户"
    if not isinstance(userid, str) or userid not in state.members:
        return _bad_request("userid must be a member of the sandbox corp")
    if not isinstance(ext, str) or not EXTERNAL_USERID.fullmatch(ext) or not isinstance(name, str):
        return _bad_request("external_userid must be 1-64 letters, digits, _ or -")
    state.add_customer(ext, name, [userid], state=str(body.get("state") or ""))
    code = state.issue_welcome_code(userid, ext)
    return _json({"userid": userid, "external_userid": ext, "state": str(body.get("state") or ""), "welcome_code": code})


async def scan_code(request: web.Request) -> web.Response:
    """A customer scans a code: ``{"code": qr_code link or config_id, "external_userid", "name"?}`` → added through
    the contact way (or joined through the join way) with its state; the product hears the callback."""
    state = request.app[STATE]
    body = await _json_body(request) or {}
    code, ext, name = body.get("code"), body.get("external_userid"), body.get("name") or "微信用户"
    if not isinstance(ext, str) or not EXTERNAL_USERID.fullmatch(ext) or not isinstance(name, str) or len(name) > 64:
        return _bad_request("external_userid must be 1-64 letters, digits, _ or -; name at most 64 characters")
    if not isinstance(code, str) or not 0 < len(code) <= 512:
        return _bad_request("code must be a code's link (qr_code) or config_id")
    try:
        async with asyncio.timeout(HOOK_TIMEOUT):
            scanned = await customer_scans(state, code.strip(), ext, name)
    except (KeyError, ValueError, LookupError) as exc:
        return _bad_request(str(exc).strip("'\""))
    return _json({"ok": True, **scanned})


async def approval_decide(request: web.Request) -> web.Response:
    """An approver decides an application on their phone: ``{"sp_no", "userid", "decision": "approve"|"reject",
    "speech"?}``; the product hears the sys_approval_change callback (as from WeCom). Returns the application."""
    state: SandboxState = request.app[STATE]
    body = await _json_body(request) or {}
    sp_no, userid, decision = body.get("sp_no"), body.get("userid"), body.get("decision")
    speech = body.get("speech") or ""
    if not (isinstance(sp_no, str) and isinstance(userid, str) and decision in ("approve", "reject") and isinstance(speech, str)):
        return _bad_request('need {"sp_no", "userid", "decision": "approve"|"reject", "speech"?}')
    try:
        app = approval_endpoints.decide(state, sp_no, userid, decision == "approve", speech[:200])
    except ValueError as exc:
        return _bad_request(str(exc))
    if state.on_wecom_event is None:
        return _bad_request("the sandbox has no callback hook")
    xml = simulator.event("sys_approval_change", AgentID=state.agent_id, ApprovalInfo=approval_endpoints.callback_fields(state, app))
    async with asyncio.timeout(HOOK_TIMEOUT):
        await state.on_wecom_event(xml)
    return _json({"ok": True, "sp_no": app.sp_no, "sp_status": app.status})


async def approval_list(request: web.Request) -> web.Response:
    """Every application in the emulated 审批 app, newest first (what the approvers' phones show)."""
    state: SandboxState = request.app[STATE]
    apps = [approval_endpoints.getapprovaldetail(state, Call({}, {"sp_no": n}))["info"] for n in reversed(list(state.applications))]
    return _json({"items": apps})


async def _deliver_pending(state: SandboxState) -> int:
    """Deliver the callbacks WeCom owes the product (queued by transfers settling), oldest first."""
    if state.on_wecom_event is None:
        return 0
    sent = 0
    while state.pending_events:
        xml = state.pending_events.pop(0)
        async with asyncio.timeout(HOOK_TIMEOUT):
            await state.on_wecom_event(xml)
        sent += 1
    return sent


async def transfer_refuse(request: web.Request) -> web.Response:
    """The customer refuses a waiting transfer (在职/离职继承): ``{"external_userid"}``; the product hears transfer_fail."""
    state: SandboxState = request.app[STATE]
    ext = (await _json_body(request) or {}).get("external_userid")
    if not isinstance(ext, str):
        return _bad_request('need {"external_userid"}')
    try:
        transfer, xml = transfer_endpoints.refuse(state, ext)
    except ValueError as exc:
        return _bad_request(str(exc))
    state.pending_events.append(xml)
    delivered = await _deliver_pending(state)
    return _json({"ok": True, "external_userid": ext, "takeover_userid": transfer.takeover_userid, "delivered": delivered})


async def transfer_settle(request: web.Request) -> web.Response:
    """Transfers whose 24 h have passed on the clock are taken over; WeCom's callbacks for them are delivered."""
    state: SandboxState = request.app[STATE]
    settled = transfer_endpoints.settle(state)
    delivered = await _deliver_pending(state)
    return _json({"ok": True, "settled": len(settled), "delivered": delivered})


async def transfer_list(request: web.Request) -> web.Response:
    """Every transfer the emulated WeCom knows, oldest first (status 1 done, 2 waiting, 3 refused, 4 takeover full)."""
    state: SandboxState = request.app[STATE]
    transfer_endpoints.settle(state)
    items = [
        {"external_userid": t.external_userid, "handover_userid": t.handover_userid, "takeover_userid": t.takeover_userid,
         "kind": t.kind, "status": t.status, "started_at": t.started_at.isoformat(), "takeover_time": t.takeover_time}
        for t in state.transfers
    ]  # fmt: skip
    return _json({"items": items})


async def member_depart(request: web.Request) -> web.Response:
    """A member leaves the corp (离职): ``{"userid"}``. Their customers then appear in get_unassigned_list."""
    state: SandboxState = request.app[STATE]
    userid = (await _json_body(request) or {}).get("userid")
    if not isinstance(userid, str) or userid not in state.members:
        return _bad_request("userid must be a member of the sandbox corp")
    member = transfer_endpoints.member_departs(state, userid)
    return _json({"ok": True, "userid": userid, "departed_at": member.departed_at.isoformat() if member.departed_at else None})


async def expire_tokens(request: web.Request) -> web.Response:
    request.app[STATE].expire_tokens()
    return _json({"ok": True})


async def traffic(request: web.Request) -> web.Response:
    """What reached the emulated WeCom / Official Account from the product (tests assert on it)."""
    return _json(request.app[STATE].traffic())


async def media_file(request: web.Request) -> web.Response:
    """The bytes of an uploaded picture, for the chat page (what the customer's WeChat shows). Expired media are
    gone, as they are on WeCom."""
    state = request.app[STATE]
    media_id = request.match_info["media_id"]
    media = state.live_media("wecom", media_id) or state.live_media("mp", media_id)
    if media is None:
        return _json({"error": {"code": "not_found", "message": "没有这个素材（不存在或已过期）"}}, status=404)
    return web.Response(body=media.content, content_type=media.content_type, headers={"Cache-Control": "private, max-age=3600"})


async def conversation(request: web.Request) -> web.Response:
    ext = request.query.get("external_userid", "")
    if not EXTERNAL_USERID.fullmatch(ext):
        return _bad_request("external_userid is required")
    return _json({"messages": request.app[STATE].kf_conversation(ext)})


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" '
        f'content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title></head><body>{body}</body></html>',
        status=status,
        content_type="text/html",
        charset="utf-8",
    )


async def oauth_authorize(request: web.Request) -> web.StreamResponse:
    """WeCom's OAuth page (open.weixin.qq.com/connect/oauth2/authorize, doc 91022) for the sandbox. The real one knows
    who is signed in to the WeCom client; here ``&userid=`` says it, or the page lists the members to pick from.
    Redirects to ``redirect_uri?code&state`` with a single-use code for ``auth/getuserinfo``."""
    state: SandboxState = request.app[STATE]
    q = request.query
    redirect_uri, oauth_state = q.get("redirect_uri", ""), q.get("state", "")
    problem = ""
    if q.get("appid") != state.corp_id:
        problem = "appid 与企业 corpid 不符"
    elif q.get("response_type") != "code" or q.get("scope") not in ("snsapi_base", "snsapi_privateinfo"):
        problem = "response_type 须为 code，scope 须为 snsapi_base 或 snsapi_privateinfo"
    elif q.get("agentid", state.agent_id) != state.agent_id or (q.get("scope") == "snsapi_privateinfo" and not q.get("agentid")):
        problem = "agentid 错误"
    elif not re.fullmatch(r"https?://[^\s#]+", redirect_uri):
        problem = "redirect_uri 须为完整的 http(s) 地址"
    elif not re.fullmatch(r"[a-zA-Z0-9]{0,128}", oauth_state):
        problem = "state 只能包含 a-zA-Z0-9，且不超过 128 字节"
    if problem:
        return _page("授权失败", f"<h1>授权失败</h1><p>{html.escape(problem)}</p>", status=400)
    userid = q.get("userid", "")
    if not userid:
        links = "".join(
            f'<li><a href="{html.escape(request.path_qs + "&userid=" + quote(m.userid), quote=True)}">'
            f"{html.escape(m.name)}（{html.escape(m.userid)}）</a></li>"
            for m in state.members.values()
        )
        return _page("企业微信授权（沙箱）", f"<h1>以哪位成员的身份登录？</h1><ul>{links}</ul>")
    code = state.issue_oauth_code(userid)
    sep = "&" if "?" in redirect_uri else "?"
    raise web.HTTPFound(f"{redirect_uri}{sep}{urlencode({'code': code, 'state': oauth_state})}")


async def jssdk_agent_config(request: web.Request) -> web.Response:
    """What the WeCom client does on ``wx.agentConfig``: check the signature over the app's agent_config ticket
    (docs/wecom.md §6). The sidebar's sandbox JS-SDK stand-in asks this; answers ``{"ok": bool, "reason"}``."""
    state = request.app[STATE]
    body = await _json_body(request) or {}
    ticket = state.js_tickets.get("agent_config")
    fields = [str(body.get(k, "")) for k in ("corpid", "agentid", "timestamp", "nonceStr", "signature", "url")]
    corpid, agentid, timestamp, nonce, signature, url = fields
    if corpid != state.corp_id or agentid != state.agent_id:
        return _json({"ok": False, "reason": "invalid corpid or agentid"})
    if ticket is None:
        return _json({"ok": False, "reason": "no agent_config ticket was issued"})
    plain = f"jsapi_ticket={ticket}&noncestr={nonce}&timestamp={timestamp}&url={url.split('#', 1)[0]}"
    if not hmac.compare_digest(hashlib.sha1(plain.encode()).hexdigest(), signature):  # noqa: S324 - WeCom's digest
        return _json({"ok": False, "reason": "invalid signature"})
    return _json({"ok": True})


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})


async def to_slash(request: web.Request) -> web.StreamResponse:
    # The page uses relative URLs, which only resolve under /sandbox/ — never /sandbox.
    raise web.HTTPFound(request.path + "/")


def create_emulator_app(state: SandboxState) -> web.Application:
    """The emulator over ``state``; every route is relative to where the app is mounted."""
    app = web.Application()
    app[STATE] = state
    app.router.add_route("*", "/wecom/cgi-bin/{path:.+}", _api_view("wecom", WECOM_ROUTES))
    app.router.add_route("*", "/mp/cgi-bin/{path:.+}", _api_view("mp", MP_ROUTES))
    app.router.add_post("/api/faults", add_fault)
    app.router.add_delete("/api/faults", clear_faults)
    app.router.add_post("/api/kf/customer-message", customer_message)
    app.router.add_get("/api/kf/conversation", conversation)
    app.router.add_get("/api/media/{media_id}", media_file)
    app.router.add_post("/api/groups/join", group_join)
    app.router.add_post("/api/groups/leave", group_leave)

    app.router.add_post("/api/contacts/customer-added", customer_added)
    app.router.add_post("/api/contacts/scan", scan_code)
    app.router.add_post("/api/tokens/expire", expire_tokens)
    app.router.add_post("/api/transfers/refuse", transfer_refuse)
    app.router.add_post("/api/transfers/settle", transfer_settle)
    app.router.add_get("/api/transfers", transfer_list)
    app.router.add_post("/api/members/depart", member_depart)
    app.router.add_post("/api/approvals/decide", approval_decide)
    app.router.add_get("/api/approvals", approval_list)
    app.router.add_get("/api/traffic", traffic)
    app.router.add_get("/connect/oauth2/authorize", oauth_authorize)
    app.router.add_post("/api/jssdk/agent-config", jssdk_agent_config)
    setup_tester_routes(app, state)  # the chat page's WeCom-event buttons, channel-code QR images and scan pages
    app.router.add_get("", to_slash)
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC_DIR)
    return app
