"""The soak's load (``bench.soak``): the sandbox WeCom served from the bench's own process, and the four kinds of
traffic started at a fixed rate — app-message callbacks, 微信客服 customers ordering in chat, API orders and
broadcasts — with what each saw counted in one :class:`Tally`."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.ingest import HOST

# What the chat's customers ask for: (text template, sku); the quantity goes in {q}.
CHAT_ORDERS = (("要{q}箱矿泉水", "WATER-550"), ("来{q}箱可乐", "COLA-330"), ("要{q}提纸巾", "TISSUE-3"), ("买{q}袋大米", "RICE-5KG"))
BROADCAST_MARK = "本周特惠"  # in every broadcast's text: told apart from the dialogue's answers
REPLY_ORIGIN = 5  # a kf message the product sent (sync_msg's origin)
CHAT_REPLY_WAIT = 60.0  # s a customer waits for an answer before the conversation counts as failed


@dataclass
class Tally:
    """What the load did and what it saw; latencies as (finish time, seconds) on the load's clock."""

    t0: float = 0.0
    callbacks: list[tuple[float, float]] = field(default_factory=list)  # app messages and kf notices answered 200
    callback_status: Counter[str] = field(default_factory=Counter)  # "app 200", "kf 200", "app error: …"
    app_ok: int = 0
    kf_messages: int = 0  # customer messages written (each announced by one kf notice)
    kf_notices_ok: int = 0
    chats_started: int = 0
    chats_done: int = 0  # quoted and confirmed
    chat_failures: Counter[str] = field(default_factory=Counter)
    chat_qty: Counter[str] = field(default_factory=Counter)  # sku → units ordered in chat
    chat_reply_s: list[float] = field(default_factory=list)
    customers: list[str] = field(default_factory=list)  # chat customers whose order is placed
    orders_tried: int = 0
    orders_ok: int = 0
    order_qty: Counter[str] = field(default_factory=Counter)
    order_status: Counter[str] = field(default_factory=Counter)
    order_s: list[tuple[float, float]] = field(default_factory=list)
    broadcasts: list[int] = field(default_factory=list)
    broadcast_status: Counter[str] = field(default_factory=Counter)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def counts(self) -> dict[str, int]:
        return {"callbacks": len(self.callbacks), "chats": self.chats_done, "orders": self.orders_ok, "broadcasts": len(self.broadcasts)}


class Emulator:
    """The sandbox WeCom (API + 微信客服 customers) served from this process; a customer's message is announced to
    the product with a signed ``kf_msg_or_event`` callback whose latency counts with the other callbacks."""

    def __init__(self, callback_url: str, tally: Tally) -> None:
        from bots.sandbox.simulator import CallbackSimulator
        from bots.sandbox.state import SandboxState
        from config import load_settings

        settings = load_settings({"SCRM_SANDBOX": "1"}, config_file=os.devnull)
        self.state = SandboxState.from_settings(settings)
        self.sim = CallbackSimulator(
            settings.wecom_token.get(), settings.wecom_aes_key.get(), settings.wecom_corp_id, agent_id=settings.wecom_agent_id
        )
        self.callback_url = callback_url
        self.tally = tally
        self._read: dict[str, int] = {}  # kf account → how much of its log replies() has read
        self._answers: dict[str, list[str]] = {}  # customer → the product's answers so far
        self.runner: Any = None
        self.session: Any = None

    async def start(self, port: int) -> None:
        import aiohttp
        from aiohttp import web

        from bots.sandbox.emulator import create_emulator_app

        root = web.Application()
        root.add_subapp("/sandbox/", create_emulator_app(self.state))
        self.runner = web.AppRunner(root, access_log=None, handle_signals=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, HOST, port).start()
        # Every callback on a connection of its own, as WeCom opens them: the kernel spreads them over both servers.
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True), timeout=aiohttp.ClientTimeout(total=10))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.runner is not None:
            await self.runner.cleanup()

    async def post_callback(self, kind: str, xml: str) -> bool:
        from bots.sandbox.simulator import signed_url

        query, body = self.sim.encrypt_post(xml)
        t0 = time.monotonic()
        try:
            async with self.session.post(signed_url(self.callback_url, query), data=body, headers={"Content-Type": "text/xml"}) as resp:
                await resp.read()
                status = resp.status
        except Exception as exc:  # counted and reported: a soak must not stop at one failed request
            self.tally.callback_status[f"{kind} {type(exc).__name__}"] += 1
            return False
        self.tally.callback_status[f"{kind} {status}"] += 1
        if status != 200:
            return False
        self.tally.callbacks.append((time.monotonic() - self.tally.t0, time.monotonic() - t0))
        return True

    async def customer_writes(self, ext: str, text: str) -> None:
        from bots.sandbox.simulator import kf_msg_or_event

        msg = self.state.customer_kf_message(ext, text, name=f"浸泡客户{ext[-4:]}")
        self.tally.kf_messages += 1
        xml = kf_msg_or_event(self.state.kf_sync_token(), msg["open_kfid"], int(self.sim.timestamp()), corp_id=self.sim.corp_id)
        if await self.post_callback("kf", xml):
            self.tally.kf_notices_ok += 1

    def replies(self, ext: str) -> list[str]:
        """What the product answered this customer — a broadcast reaching them mid-conversation is no answer. The
        emulator's log only grows: read what is new since the last call (``kf_conversation`` rescans all of it,
        which over half an hour would cost the load's own loop more and more)."""
        for kfid, log in self.state.kf_log.items():
            seen = self._read.get(kfid, 0)
            for m in log[seen:]:
                if m.get("origin") == REPLY_ORIGIN and m.get("msgtype") == "text" and BROADCAST_MARK not in m["text"]["content"]:
                    self._answers.setdefault(m["external_userid"], []).append(m["text"]["content"])
            self._read[kfid] = len(log)
        return list(self._answers.get(ext, []))


async def every(name: str, period: float, until: float, tally: Tally, start: Any, *, first: float = 0.0) -> list[asyncio.Task[Any]]:
    """Start ``start(n)`` as a task every ``period`` s (first after ``first`` s) until ``until`` on the load's clock,
    whatever the previous ones are doing: a fixed rate, not a closed loop that slows down with the server."""
    tasks: list[asyncio.Task[Any]] = []
    n = 0
    next_at = first
    while next_at < until:
        await asyncio.sleep(max(0.0, next_at - tally.now()))
        tasks.append(asyncio.create_task(start(n), name=name))
        n += 1
        next_at = first + n * period
    return tasks


async def app_callback(emu: Emulator, n: int) -> None:
    from bots.sandbox.simulator import text_message

    xml = text_message(
        f"SoakMember{n % 50:02d}", "你好，今天几点发货？", msg_id=4 * 10**15 + n, agent_id=emu.sim.agent_id, corp_id=emu.sim.corp_id
    )
    if await emu.post_callback("app", xml):
        emu.tally.app_ok += 1


async def wait_replies(emu: Emulator, ext: str, count: int, within: float) -> list[str] | None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        got = emu.replies(ext)
        if len(got) >= count:
            return got
        await asyncio.sleep(0.25)
    return None


async def chat(emu: Emulator, n: int, nonce: int) -> None:
    """One customer: orders in a sentence, gets the quote, confirms; the order is placed."""
    tally = emu.tally
    tally.chats_started += 1
    ext = f"wmSoak{nonce}C{n:05d}"
    template, sku = CHAT_ORDERS[n % len(CHAT_ORDERS)]
    qty = 1 + n % 5
    t0 = time.monotonic()
    await emu.customer_writes(ext, template.format(q=qty))
    quote = await wait_replies(emu, ext, 1, CHAT_REPLY_WAIT)
    if quote is None:
        tally.chat_failures["no quote"] += 1
        return
    tally.chat_reply_s.append(time.monotonic() - t0)
    if "确认" not in quote[-1]:
        tally.chat_failures[f"not a quote: {quote[-1][:40]}"] += 1
        return
    t1 = time.monotonic()
    await emu.customer_writes(ext, "确认")
    confirmed = await wait_replies(emu, ext, len(quote) + 1, CHAT_REPLY_WAIT)
    if confirmed is None:
        tally.chat_failures["no answer to 确认"] += 1
        return
    tally.chat_reply_s.append(time.monotonic() - t1)
    tally.chats_done += 1
    tally.chat_qty[sku] += qty
    tally.customers.append(ext)


async def api_order(session: Any, base: str, tally: Tally, n: int) -> None:
    if not tally.customers:
        tally.order_status["skipped: no customer yet"] += 1
        return
    customer = tally.customers[n % len(tally.customers)]
    sku = CHAT_ORDERS[n % len(CHAT_ORDERS)][1]
    qty = 1 + n % 3
    body = {"customer": customer, "lines": [{"sku": sku, "qty": qty}], "confirm": True}
    tally.orders_tried += 1
    t0 = time.monotonic()
    try:
        async with session.post(f"{base}/api/v1/orders", json=body) as resp:
            order = await resp.json(content_type=None)
            status = resp.status
    except Exception as exc:  # counted and reported
        tally.order_status[type(exc).__name__] += 1
        return
    tally.order_s.append((tally.now(), time.monotonic() - t0))
    placed = status == 201 and isinstance(order, dict) and order.get("status") == "confirmed"
    tally.order_status["201 confirmed" if placed else f"{status} {str(order)[:60]}"] += 1
    if placed:
        tally.orders_ok += 1
        tally.order_qty[sku] += qty


async def broadcast(session: Any, base: str, tally: Tally, n: int) -> None:
    body = {"name": f"浸泡测试群发 {n + 1}", "segment": "last_active < 1d", "text": f"{BROADCAST_MARK}第 {n + 1} 期：矿泉水买十送一。"}
    try:
        async with session.post(f"{base}/api/v1/broadcasts", json=body) as resp:
            created = await resp.json(content_type=None)
            if resp.status != 201:
                tally.broadcast_status[f"create {resp.status}"] += 1
                return
        async with session.post(f"{base}/api/v1/broadcasts/{created['id']}/start") as resp:
            await resp.read()
            tally.broadcast_status[f"start {resp.status}"] += 1
            if resp.status == 200:
                tally.broadcasts.append(int(created["id"]))
    except Exception as exc:  # counted and reported
        tally.broadcast_status[type(exc).__name__] += 1
