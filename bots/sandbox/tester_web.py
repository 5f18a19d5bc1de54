"""HTTP for the sandbox's tester actions (:mod:`bots.sandbox.tester_actions`) and its channel-code QR images.

Mounted on the emulator app by :func:`setup_tester_routes` (relative to ``/sandbox/``):

* ``GET /api/tester/options?external_userid=`` — members, groups, channel codes for the chat page's buttons;
* ``POST /api/tester/{action}`` — ``add-salesperson`` / ``delete-salesperson`` ``{"external_userid","name","userid"}``,
  ``join-group`` / ``leave-group`` ``{"external_userid","name","chat_id"}``, ``scan-channel-code``
  ``{"external_userid","name","config_id"}``: the emulator changes, then the signed callback reaches the product;
* ``GET /qr/contact-way/{config_id}.png`` — a real, scannable QR code (segno) of the code's scan page;
* ``GET|POST /scan/{config_id}`` — the scan page: what a phone opens from that QR code; its button makes the
  customer scan the code (a tester types which customer they are).

Unauthenticated like every emulator route: the emulator exists only in sandbox mode.
"""

from __future__ import annotations

import html
import io
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import segno
from aiohttp import web

from bots.sandbox import approval_endpoints, simulator
from bots.sandbox.state import SandboxState
from bots.sandbox.tester_actions import (
    TesterError,
    customer_adds_salesperson,
    customer_deletes_salesperson,
    customer_joins_group_chat,
    customer_leaves_group_chat,
    customer_scans_contact_way,
    tester_options,
)

EXTERNAL_USERID = re.compile(r"[0-9A-Za-z_-]{1,64}")
CONFIG_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
Action = Callable[[SandboxState, dict[str, str]], Awaitable[dict[str, Any]]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def _refuse(message: str) -> web.Response:
    return _json({"error": {"code": "bad_request", "message": message}}, status=400)


ACTIONS: dict[str, Action] = {
    "add-salesperson": lambda s, b: customer_adds_salesperson(s, b["external_userid"], b["name"], b["userid"]),
    "delete-salesperson": lambda s, b: customer_deletes_salesperson(s, b["external_userid"], b["userid"]),
    "join-group": lambda s, b: customer_joins_group_chat(s, b["chat_id"], b["external_userid"], b["name"]),
    "leave-group": lambda s, b: customer_leaves_group_chat(s, b["chat_id"], b["external_userid"]),
    "scan-channel-code": lambda s, b: customer_scans_contact_way(s, b["config_id"], b["external_userid"], b["name"]),
}
NEEDS = {
    "add-salesperson": "userid",
    "delete-salesperson": "userid",
    "join-group": "chat_id",
    "leave-group": "chat_id",
    "scan-channel-code": "config_id",
}
NEEDS_ZH = {"userid": "销售", "chat_id": "客户群", "config_id": "渠道活码"}


def _fields(raw: Any) -> tuple[dict[str, str], str]:
    """The action's fields as strings, or a Chinese reason they are unusable."""
    if not isinstance(raw, dict):
        return {}, "请求体必须是 JSON 对象"
    body = {k: raw.get(k) if isinstance(raw.get(k), str) else "" for k in ("external_userid", "name", "userid", "chat_id", "config_id")}
    if not EXTERNAL_USERID.fullmatch(body["external_userid"]):
        return {}, "客户ID 须为 1–64 位字母、数字、_ 或 -"
    if len(body["name"]) > 64:
        return {}, "昵称最多 64 个字"
    return {k: v.strip() for k, v in body.items()}, ""


def setup_tester_routes(app: web.Application, state: SandboxState) -> None:
    """Add the tester routes and QR images to the emulator ``app`` (over ``state``)."""

    async def options(request: web.Request) -> web.Response:
        return _json(tester_options(state, request.query.get("external_userid", "")))

    async def act(request: web.Request) -> web.Response:
        name = request.match_info["action"]
        if name not in ACTIONS:
            return _json({"error": {"code": "not_found", "message": f"没有这个操作：{name}"}}, status=404)
        try:
            raw = await request.json()
        except ValueError:
            raw = None
        body, problem = _fields(raw)
        if problem:
            return _refuse(problem)
        if not body[NEEDS[name]]:
            return _refuse(f"请选择{NEEDS_ZH[NEEDS[name]]}")
        try:
            done = await ACTIONS[name](state, body)
        except TesterError as exc:
            return _refuse(exc.message)
        return _json({"ok": True, **done})

    async def qr_png(request: web.Request) -> web.Response:
        config_id = request.match_info["config_id"]
        if config_id not in state.contact_ways:
            raise web.HTTPNotFound(text="没有这个渠道活码")
        target = f"{state.public_base or str(request.url.origin())}/sandbox/scan/{config_id}"
        buf = io.BytesIO()
        segno.make(target, error="m").save(buf, kind="png", scale=6, border=2)
        return web.Response(body=buf.getvalue(), content_type="image/png", headers={"Cache-Control": "no-store"})

    async def scan_page(request: web.Request) -> web.Response:
        config_id = request.match_info["config_id"]
        way = state.contact_ways.get(config_id) if CONFIG_ID.fullmatch(config_id) else None
        if way is None:
            return _page("渠道活码", "<h1>这个渠道活码不存在或已删除</h1>", status=404)
        member = state.members.get(way.users[0]) if way.users else None
        who = f"{member.name}（{member.userid}）" if member else "—"
        result = ""
        if request.method == "POST":
            form = await request.post()
            body, problem = _fields({k: str(v) for k, v in form.items()})
            if not problem:
                try:
                    await customer_scans_contact_way(state, config_id, body["external_userid"], body["name"])
                    result = f'<p class="ok">已添加 {html.escape(who)} 为好友，产品已收到回调。</p>'
                except TesterError as exc:
                    problem = exc.message
            if problem:
                result = f'<p class="err">{html.escape(problem)}</p>'
        form_html = (
            f"<h1>扫码添加 {html.escape(who)}</h1><p>渠道 state：{html.escape(way.state or '—')}</p>{result}"
            f'<form method="post"><label>客户ID <input name="external_userid" required maxlength="64" '
            f'placeholder="如：wmSandboxAbc123"></label><label>昵称 <input name="name" maxlength="64" placeholder="如：张三"></label>'
            f'<button type="submit">以客户身份添加</button></form><p><a href="../">回到聊天页</a></p>'
        )
        return _page("扫码添加（沙箱）", form_html)

    async def approvals_page(request: web.Request) -> web.Response:
        """审批人的手机: the emulated 审批 app — each application waiting on a member, with 同意 / 驳回 as that member
        (the product hears the sys_approval_change callback, as from WeCom)."""
        result = ""
        if request.method == "POST":
            form = await request.post()
            sp_no, userid, decision = (str(form.get(k, "")) for k in ("sp_no", "userid", "decision"))
            speech = str(form.get("speech", ""))[:200]
            try:
                app_ = approval_endpoints.decide(state, sp_no, userid, decision == "approve", speech)
            except ValueError:
                result = '<p class="err">这个审批已处理，或不是该成员当前可以审批的</p>'
            else:
                if state.on_wecom_event is not None:
                    info = approval_endpoints.callback_fields(state, app_)
                    await state.on_wecom_event(simulator.event("sys_approval_change", AgentID=state.agent_id, ApprovalInfo=info))
                verb = "同意" if decision == "approve" else "驳回"
                result = f'<p class="ok">{html.escape(userid)} 已{verb}审批单 {html.escape(sp_no)}，产品已收到回调。</p>'
        rows = []
        for app_ in reversed(list(state.applications.values())):
            text = next((str(c.get("value", {}).get("text", "")) for c in app_.apply_data.get("contents", []) if isinstance(c, dict)), "")
            status = {1: "审批中", 2: "已通过", 3: "已驳回", 4: "已撤销"}.get(app_.status, str(app_.status))
            node = app_.current
            buttons = ""
            for userid in node.userids if node is not None and app_.status == 1 else []:
                if any(d["userid"] == userid for d in node.details):  # type: ignore[union-attr]
                    continue
                who = state.members[userid].name if userid in state.members else userid
                buttons += (
                    f'<form method="post"><input type="hidden" name="sp_no" value="{html.escape(app_.sp_no)}">'
                    f'<input type="hidden" name="userid" value="{html.escape(userid)}">'
                    f"<label>{html.escape(who)}（{html.escape(userid)}）的意见"
                    f'<input name="speech" maxlength="200" placeholder="可选"></label>'
                    f'<button type="submit" name="decision" value="approve">同意</button> '
                    f'<button type="submit" name="decision" value="reject" class="no">驳回</button></form>'
                )
            body_text = html.escape(text).replace("\n", "<br>")
            rows.append(f"<section><h2>{html.escape(app_.sp_no)} · {status}</h2><p>{body_text}</p>{buttons}</section>")
        listing = "".join(rows) or "<p>还没有审批单。产品里有单据触发审批规则后，会出现在这里。</p>"
        return _page("审批（沙箱企业微信）", f'<h1>企业微信 · 审批</h1>{result}{listing}<p><a href="./">回到聊天页</a></p>')

    app.router.add_get("/approvals", approvals_page)
    app.router.add_post("/approvals", approvals_page)
    app.router.add_get("/api/tester/options", options)
    app.router.add_post("/api/tester/{action}", act)
    app.router.add_get("/qr/contact-way/{config_id}.png", qr_png)
    app.router.add_route("GET", "/scan/{config_id}", scan_page)
    app.router.add_route("POST", "/scan/{config_id}", scan_page)


STYLE = (
    "body{font:16px/1.5 sans-serif;margin:0 auto;max-width:420px;padding:16px}label{display:block;margin:8px 0}"
    "input{display:block;width:100%;padding:6px;font:inherit;box-sizing:border-box}input::placeholder{color:#aaa}"
    "button{padding:8px 16px;font:inherit;background:#07c160;color:#fff;border:0;border-radius:6px}"
    ".ok{color:#067d3a}.err{color:#c0392b}section{border:1px solid #ddd;border-radius:8px;padding:8px 12px;margin:12px 0}"
    "h2{font-size:16px;margin:4px 0}button.no{background:#c0392b}"
)


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, '
        f'initial-scale=1"><title>{html.escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>',
        status=status,
        content_type="text/html",
        charset="utf-8",
    )
