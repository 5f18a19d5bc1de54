"""``python run.py demo``: a scripted end-to-end scenario in the sandbox, printed for a person to read.

The real app runs in this process on a free local port (sandbox mode, in-process jobs, the sample catalog), and
the demo drives it over HTTP exactly as the sandbox chat page and a staff member would: a customer orders in
微信客服, corrects the quantity, confirms; staff ship through the API; the shipped notice comes back into the chat.
Every step is checked; the exit code is 0 only when every step did what it should.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import socket
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from config import ConfigError, Settings, load_settings

CUSTOMER_NAME = "王小姐"
CUSTOMER_ID = "wmDemoWang"
SKU = "WATER-550"
CARRIER = "顺丰速运"
TRACKING_NO = "SF1234567890"
ORDER_NO = re.compile(r"\bSO\d{6,}\b")

REPLY_TIMEOUT = 20.0  # seconds to wait for the bot's answer in the chat
SETTLE_TIMEOUT = 15.0  # seconds to wait for outgoing messages to leave "pending"
HTTP_TIMEOUT = 15.0
POLL_INTERVAL = 0.15
START_ATTEMPTS = 3

INDENT = "      "


class DemoFailed(Exception):
    """A step did not do what it should; the message says what happened."""


@dataclass
class Chat:
    """The customer's side of the 微信客服 conversation, read through the sandbox's own chat API."""

    session: aiohttp.ClientSession
    external_userid: str
    name: str
    seen: set[str] = field(default_factory=set)

    async def messages(self) -> list[dict[str, Any]]:
        async with self.session.get("/sandbox/api/kf/conversation", params={"external_userid": self.external_userid}) as resp:
            body = await _json_ok(resp, "GET /sandbox/api/kf/conversation")
        return list(body.get("messages") or [])

    async def say(self, text: str) -> None:
        payload = {"external_userid": self.external_userid, "name": self.name, "text": text}
        async with self.session.post("/sandbox/api/kf/customer-message", json=payload) as resp:
            body = await _json_ok(resp, "POST /sandbox/api/kf/customer-message")
        if not body.get("delivered", False):
            raise DemoFailed(f"沙箱没能把消息回调给应用 / the sandbox could not deliver the callback: {body}")
        self.seen.add(str(body.get("msgid")))

    async def wait_for_bot(self, accept: Callable[[str], bool], what: str, within: float = REPLY_TIMEOUT) -> list[str]:
        """New bot messages until one satisfies ``accept``; returns every new bot text, oldest first."""
        new: list[str] = []
        deadline = time.monotonic() + within
        while True:
            for m in await self.messages():
                msgid = str(m.get("msgid"))
                if msgid in self.seen:
                    continue
                self.seen.add(msgid)
                if m.get("origin") == 5:
                    new.append(str(m.get("text", "")))
            if any(accept(text) for text in new):
                return new
            if time.monotonic() >= deadline:
                got = "\n".join(new) if new else "（没有回复 / no reply）"
                raise DemoFailed(f"{within:.0f} 秒内没有等到{what} / no {what} within {within:.0f} s; bot said:\n{got}")
            await asyncio.sleep(POLL_INTERVAL)


async def _json_ok(resp: aiohttp.ClientResponse, what: str, status: int = 200) -> dict[str, Any]:
    text = await resp.text()
    if resp.status != status:
        raise DemoFailed(f"{what} → HTTP {resp.status} (expected {status}): {text[:300]}")
    try:
        body = await resp.json(content_type=None)
    except ValueError:
        raise DemoFailed(f"{what} → not JSON: {text[:300]}") from None
    if not isinstance(body, dict):
        raise DemoFailed(f"{what} → unexpected answer: {text[:300]}")
    return body


class Api:
    """Staff's side: /api/v1 with the bearer token."""

    def __init__(self, session: aiohttp.ClientSession, token: str) -> None:
        self.session = session
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, *, status: int = 200, **kw: Any) -> dict[str, Any]:
        async with self.session.request(method, "/api/v1" + path, headers=self.headers, **kw) as resp:
            return await _json_ok(resp, f"{method} /api/v1{path}", status)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_settings(database_url: str, port: int) -> Settings:
    """Fresh sandbox settings (emulated WeCom and WeChat, in-process jobs) on ``database_url`` and ``port``;
    nothing from the environment or the config file, so real credentials are never touched."""
    env = {
        "SCRM_SANDBOX": "1",
        "SCRM_HOST": "127.0.0.1",
        "SCRM_PORT": str(port),
        "SCRM_DATABASE_URL": database_url,
        "SCRM_LOG_FORMAT": "text",
        "SCRM_LOG_LEVEL": "WARNING",
    }
    return load_settings(env, config_file=os.devnull)


def _indent(text: str, first: str) -> str:
    lines = text.splitlines() or [""]
    pad = " " * _width(first)
    return "\n".join([first + lines[0], *(pad + ln for ln in lines[1:])])


def _width(text: str) -> int:
    """Terminal columns: CJK and full-width characters take two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


class Report:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.timings: list[tuple[str, float]] = []
        self.step_no = 0
        self.step_title = ""
        self.step_started = 0.0

    def line(self, text: str = "") -> None:
        print(text, flush=True)

    def step(self, title: str) -> None:
        self.step_no += 1
        self.step_title = title
        self.step_started = time.perf_counter()
        self.line()
        self.line(f"[{self.step_no}] {title}")

    def done(self) -> None:
        took = time.perf_counter() - self.step_started
        self.timings.append((f"[{self.step_no}] {self.step_title}", took))
        self.line(f"{INDENT}✓ {took:.2f} s")

    def customer(self, name: str, text: str) -> None:
        self.line(_indent(text, f"{INDENT}👤 {name} → "))

    def bot(self, texts: list[str]) -> None:
        for text in texts:
            self.line(_indent(text, f"{INDENT}🤖 客服 bot ← "))

    def note(self, text: str) -> None:
        self.line(_indent(text, f"{INDENT}• "))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        widths = [max(_width(c) for c in col) for col in zip(header, *rows, strict=True)]
        for i, row in enumerate([header, *rows]):
            self.line(INDENT + "  ".join(_pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip())
            if i == 0:
                self.line(INDENT + "  ".join("-" * w for w in widths))

    def summary(self) -> None:
        self.line()
        self.line("用时 / timings:")
        width = max(_width(title) for title, _ in self.timings) if self.timings else 0
        for title, took in self.timings:
            self.line(f"  {_pad(title, width)}  {took:6.2f} s")
        self.line(f"  {_pad('合计 / total', width)}  {time.perf_counter() - self.started:6.2f} s")


async def _start(settings_for_port: Callable[[int], Settings]) -> tuple[Settings, web.AppRunner]:
    """Start the real app on a free port (retrying if another process grabs the port first)."""
    from scrm.app.webapp import create_app

    last: OSError | None = None
    for _ in range(START_ATTEMPTS):
        settings = settings_for_port(_free_port())
        runner = web.AppRunner(create_app(settings), access_log=None, handle_signals=False, shutdown_timeout=5)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:
            last = exc
            await runner.cleanup()
            continue
        return settings, runner
    raise DemoFailed(f"无法监听本地端口 / could not listen on a local port: {last}")


async def _scenario(report: Report, settings: Settings, external_userid: str) -> None:
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT)
    async with aiohttp.ClientSession(base_url=settings.base_url, timeout=timeout) as session:
        chat = Chat(session, external_userid, CUSTOMER_NAME)
        api = Api(session, settings.admin_token.get())
        before = await api.call("GET", f"/products/{SKU}")
        latest = (await api.call("GET", "/outbound-messages", params={"limit": "1"}))["items"]
        first_new_id = int(latest[0]["id"]) + 1 if latest else 0

        async def turn(text: str, accept: Callable[[str], bool], what: str) -> str:
            await chat.say(text)
            report.customer(CUSTOMER_NAME, text)
            replies = await chat.wait_for_bot(accept, what)
            report.bot(replies)
            return next(r for r in replies if accept(r))

        report.step("客户问好 / the customer says hello")
        await turn("你好", lambda t: "您好" in t, "问候回复 / greeting")
        report.done()

        report.step("客户下单 / the customer orders in chat → quote")
        quote = await turn("要3箱矿泉水和2提纸巾", lambda t: "合计" in t, "报价 / quote")
        if not ("矿泉水" in quote and "× 3箱" in quote and "抽纸" in quote and "× 2提" in quote):
            raise DemoFailed(f"报价里应有 3箱矿泉水 和 2提抽纸 / the quote should list 3 cases of water and 2 packs of tissue:\n{quote}")
        report.done()

        report.step("客户改数量 / the customer changes the quantity → new quote")
        quote = await turn("矿泉水改成4箱", lambda t: "合计" in t, "新报价 / new quote")
        if "× 4箱" not in quote or "× 2提" not in quote:
            raise DemoFailed(f"新报价应为 4箱矿泉水 + 2提抽纸 / the new quote should be 4 cases + 2 packs:\n{quote}")
        report.done()

        report.step("客户确认 / the customer confirms → order placed")
        confirmed = await turn("确认", lambda t: "已确认" in t, "确认回复 / confirmation")
        match = ORDER_NO.search(confirmed)
        if match is None:
            raise DemoFailed(f"确认回复里没有订单号 / no order number in the confirmation:\n{confirmed}")
        number = match.group(0)
        order = await api.call("GET", f"/orders/{number}")
        report.note(f"订单号 / order number: {number}   状态 / status: {order.get('status')}")
        report.done()

        report.step("员工发货 / staff ship the order (API) → shipped notice in the chat")
        shipped = await api.call("POST", f"/orders/{number}/shipments", status=201, json={"carrier": CARRIER, "tracking_no": TRACKING_NO})
        report.note(
            f"POST /api/v1/orders/{number}/shipments → 运单 / shipment {shipped.get('shipment')}, "
            f"订单状态 / order status: {shipped.get('order', {}).get('status')}"
        )
        notices = await chat.wait_for_bot(lambda t: "已发货" in t and TRACKING_NO in t, "发货通知 / shipped notice")
        report.bot(notices)
        report.done()

        report.step("库存与发出的消息 / stock and messages sent")
        after = await api.call("GET", f"/products/{SKU}")
        report.table(
            ["", "on_hand 在库", "allocated 已分配", "available 可用"],
            [
                [f"{SKU} {when}", str(p["on_hand"]), str(p["allocated"]), str(p["available"])]
                for when, p in (("前/before", before), ("后/after", after))
            ],
        )
        if after["on_hand"] != before["on_hand"] - 4 or after["allocated"] != before["allocated"]:
            raise DemoFailed(f"发出 4 箱后库存应减 4 / stock should be 4 lower after shipping 4 cases: before {before}, after {after}")
        sent = await _settled_messages(api, first_new_id)
        report.line()
        report.table(
            ["id", "channel", "purpose", "recipient", "status"],
            [[str(m["id"]), m["channel"], m["purpose"], m["recipient"], m["status"]] for m in sent],
        )
        bad = [m for m in sent if m["status"] not in ("sent", "awaiting_salesperson")]
        if bad:
            raise DemoFailed(
                f"有消息没有发出 / some messages were not sent: {[(m['id'], m['status'], m.get('error_message')) for m in bad]}"
            )
        if sum(1 for m in sent if m["channel"] == "kf" and m["status"] == "sent") < 5:
            raise DemoFailed("应有 4 条回复和 1 条发货通知经 微信客服 发出 / expected 4 replies and 1 notice sent via 微信客服")
        report.done()


async def _settled_messages(api: Api, first_id: int) -> list[dict[str, Any]]:
    """Outbound messages of this run, oldest first, once none is pending (bounded)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        items = (await api.call("GET", "/outbound-messages", params={"limit": "200"}))["items"]
        ours = sorted((m for m in items if int(m["id"]) >= first_id), key=lambda m: int(m["id"]))
        pending = (await api.call("GET", "/outbox", params={"status": "pending", "limit": "1"}))["items"]
        if not pending and all(m["status"] != "pending" for m in ours):
            return ours
        if time.monotonic() >= deadline:
            return ours  # the status column shows what is still pending; the caller decides
        await asyncio.sleep(POLL_INTERVAL)


async def run_demo(settings: Settings, *, keep_db: bool) -> int:
    """Run the scenario; 0 when every step did what it should, 1 when one did not, 2 when it could not start."""
    from scrm.app.runtime import NotMigrated

    report = Report()
    async with AsyncExitStack() as stack:
        if keep_db:
            if not settings.is_sandbox:
                print(
                    "演示只在沙箱模式下运行 / the demo runs only in sandbox mode: WeCom credentials are configured, "
                    "so --keep-db would write demo orders into a real database. Run without --keep-db.",
                    flush=True,
                )
                return 2
            database_url = settings.database_url
            where = f"配置的数据库 / the configured database ({_safe_url(database_url)})"
            # A fresh customer each run: the kept database may hold the previous run's orders.
            external_userid = f"{CUSTOMER_ID}-{secrets.token_hex(3)}"
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="scrm-demo-"))
            database_url = f"sqlite+aiosqlite:///{Path(tmp) / 'demo.db'}"
            where = f"临时 SQLite，结束后删除 / temporary SQLite, deleted afterwards ({tmp})"
            external_userid = CUSTOMER_ID

        report.line("SCRM 演示 / demo: 微信客服 ordering, end to end in the sandbox")
        try:
            app_settings, runner = await _start(lambda port: demo_settings(database_url, port))
        except ConfigError as exc:
            print(f"配置错误 / configuration error: {exc}", flush=True)
            return 2
        except NotMigrated as exc:
            print(f"数据库未迁移 / database not migrated: {exc}", flush=True)
            return 2
        except DemoFailed as exc:
            print(f"✗ {exc}", flush=True)
            return 2
        stack.push_async_callback(runner.cleanup)
        report.line(f"  沙箱聊天页 / sandbox chat: {app_settings.base_url}/sandbox/   (jobs: {app_settings.jobs_backend})")
        report.line(f"  数据库 / database: {where}")
        report.line(f"  客户 / customer: {CUSTOMER_NAME} ({external_userid})")
        try:
            await _scenario(report, app_settings, external_userid)
        except (DemoFailed, aiohttp.ClientError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            report.line()
            report.line(f"✗ 第 {report.step_no} 步失败 / step {report.step_no} failed ({report.step_title}):")
            report.line(_indent(reason, "  "))
            return 1
        report.summary()
        report.line()
        report.line(f"✓ 全部 {report.step_no} 步成功 / all {report.step_no} steps did what they should")
    return 0


def _safe_url(url: str) -> str:
    """The database URL without a password."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
