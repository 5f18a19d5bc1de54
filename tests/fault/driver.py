"""A load driver that behaves like WeCom towards ``POST /callback/wecom``, at a steady, bounded rate.

Customers arrive one every ``interval`` seconds for ``duration`` seconds. Each one, in turn:

* adds the salesperson (客户联系 ``add_external_contact`` with a single-use WelcomeCode);
* writes "要3箱矿泉水" in 微信客服, waits for the bot's answer, then writes "确认".

Every callback is delivered three times — two copies at once and one a little later — and each copy is a
WeCom delivery: it waits 5 s for an answer and retries a non-200 / timeout up to three times with back-off.
What was sent and what was accepted is recorded for the invariant checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field

import aiohttp

from bots.sandbox import simulator
from bots.sandbox.simulator import CallbackSimulator, signed_url
from config.settings import SANDBOX_AES_KEY, SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_TOKEN

WECOM_WAIT = 5.0  # WeCom waits 5 s for the 200
RETRY_DELAYS = (0.5, 1.5, 3.0)  # three retries after the first try
ORDER_TEXT = "要3箱矿泉水"
CONFIRM_TEXT = "确认"
SALESPERSON = "sales01"


@dataclass
class Callback:
    """One logical callback (one WeCom event) and what became of its copies."""

    kind: str  # "kf" | "contact"
    xml: str
    statuses: list[list[int | str]] = field(default_factory=list)  # per copy: the answer of each try

    @property
    def accepted(self) -> bool:
        return any(200 in tries for tries in self.statuses)


@dataclass
class CustomerRun:
    external_userid: str
    welcome_code: str = ""
    order_msgid: str = ""
    confirm_msgid: str = ""
    prompted: bool = False  # the bot answered the order text in time
    prompt_s: float | None = None  # seconds from writing the order text to the bot's answer (None: none in time)
    confirmed: bool = False  # "确认" was written (after the prompt)
    callbacks: list[Callback] = field(default_factory=list)


@dataclass
class LoadReport:
    customers: list[CustomerRun] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0

    @property
    def callbacks(self) -> list[Callback]:
        return [cb for c in self.customers for cb in c.callbacks]

    def summary(self) -> str:
        cbs = self.callbacks
        tries = [s for cb in cbs for copy in cb.statuses for s in copy]
        non200 = sum(1 for s in tries if s != 200)
        return (
            f"{len(self.customers)} customers, {len(cbs)} callbacks ({sum(cb.accepted for cb in cbs)} accepted), "
            f"{len(tries)} HTTP tries ({non200} non-200/timeouts), {sum(c.confirmed for c in self.customers)} confirmed orders, "
            f"{self.finished - self.started:.1f} s; answer to the order after {self.prompt_times()}"
        )

    def prompt_times(self) -> str:
        return ", ".join("never" if c.prompt_s is None else f"{c.prompt_s:.1f}" for c in self.customers) + " s"

    @property
    def slowest_prompt(self) -> float:
        """Seconds the slowest customer waited for the bot's answer (inf when one never got it in time)."""
        return max((float("inf") if c.prompt_s is None else c.prompt_s for c in self.customers), default=0.0)


class Driver:
    def __init__(self, base_url: str, session: aiohttp.ClientSession, *, seed: int = 8) -> None:
        self.base_url = base_url
        self.session = session
        self.sim = CallbackSimulator(SANDBOX_TOKEN, SANDBOX_AES_KEY, SANDBOX_CORP_ID, agent_id=SANDBOX_AGENT_ID)
        self.random = random.Random(seed)
        self._later: set[asyncio.Task[None]] = set()

    # ---- WeCom's side of a delivery ---------------------------------------------------------------------
    async def _one_copy(self, xml: str) -> list[int | str]:
        tries: list[int | str] = []
        for attempt in range(1 + len(RETRY_DELAYS)):
            # A retry is a new request: new timestamp, nonce and signature over the same message.
            query, body = self.sim.encrypt_post(xml)
            try:
                async with self.session.post(
                    signed_url(f"{self.base_url}/callback/wecom", query),
                    data=body,
                    headers={"Content-Type": "text/xml"},
                    timeout=aiohttp.ClientTimeout(total=WECOM_WAIT),
                ) as resp:
                    await resp.read()
                    tries.append(resp.status)
                    if resp.status == 200:
                        return tries
            except TimeoutError:
                tries.append("timeout")
            except aiohttp.ClientError as exc:
                tries.append(type(exc).__name__)
            if attempt < len(RETRY_DELAYS):
                await asyncio.sleep(RETRY_DELAYS[attempt])
        return tries

    async def deliver_thrice(self, cb: Callback) -> None:
        """Two copies at once now; the third one 1-4 s later (not awaited: :meth:`finish` waits for it)."""
        first = await asyncio.gather(self._one_copy(cb.xml), self._one_copy(cb.xml))
        cb.statuses.extend(first)

        async def later() -> None:
            await asyncio.sleep(self.random.uniform(1.0, 4.0))
            cb.statuses.append(await self._one_copy(cb.xml))

        task = asyncio.create_task(later())
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    # ---- the emulator's control routes ----------------------------------------------------------------
    async def _post(self, path: str, json: dict[str, object]) -> dict[str, object]:
        async with self.session.post(f"{self.base_url}/sandbox/api/{path}", json=json) as resp:
            assert resp.status == 200, await resp.text()
            return dict(await resp.json())

    async def conversation(self, external_userid: str) -> list[dict[str, object]]:
        async with self.session.get(f"{self.base_url}/sandbox/api/kf/conversation", params={"external_userid": external_userid}) as resp:
            return list((await resp.json())["messages"])

    async def kf_message(self, run: CustomerRun, text: str) -> str:
        """The customer writes in 微信客服 (logged by the emulator), then WeCom tells us there is news."""
        logged = await self._post(
            "kf/customer-message", {"external_userid": run.external_userid, "name": "顾客", "text": text, "deliver": False}
        )
        xml = simulator.kf_msg_or_event(str(logged["token"]), str(logged["open_kfid"]))
        cb = Callback("kf", xml)
        run.callbacks.append(cb)
        await self.deliver_thrice(cb)
        return str(logged["msgid"])

    async def contact_added(self, run: CustomerRun) -> None:
        added = await self._post("contacts/customer-added", {"userid": SALESPERSON, "external_userid": run.external_userid, "name": "顾客"})
        run.welcome_code = str(added["welcome_code"])
        xml = simulator.change_external_contact(
            "add_external_contact", SALESPERSON, run.external_userid, state="", welcome_code=run.welcome_code
        )
        cb = Callback("contact", xml)
        run.callbacks.append(cb)
        await self.deliver_thrice(cb)

    async def wait_for_reply(self, external_userid: str, after_msgid: str, within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            messages = await self.conversation(external_userid)
            ids = [m["msgid"] for m in messages]
            if after_msgid in ids and any(m["origin"] == 5 for m in messages[ids.index(after_msgid) + 1 :]):
                return True
            await asyncio.sleep(0.3)
        return False

    # ---- one customer, and the stream -----------------------------------------------------------------
    async def customer(self, run: CustomerRun, prompt_wait: float) -> None:
        await self.contact_added(run)
        run.order_msgid = await self.kf_message(run, ORDER_TEXT)
        t0 = time.monotonic()
        run.prompted = await self.wait_for_reply(run.external_userid, run.order_msgid, prompt_wait)
        run.prompt_s = time.monotonic() - t0 if run.prompted else None
        if run.prompted:
            run.confirm_msgid = await self.kf_message(run, CONFIRM_TEXT)
            run.confirmed = True

    async def run(self, *, customers: int, interval: float, prompt_wait: float = 25.0, tag: str = "f") -> LoadReport:
        report = LoadReport(started=time.monotonic())
        tasks = []
        for i in range(customers):
            run = CustomerRun(external_userid=f"wm{tag}{i:03d}")
            report.customers.append(run)
            tasks.append(asyncio.create_task(self.customer(run, prompt_wait)))
            await asyncio.sleep(interval)
        await asyncio.gather(*tasks)
        await self.finish()
        report.finished = time.monotonic()
        return report

    async def finish(self) -> None:
        while self._later:
            await asyncio.gather(*list(self._later))

    async def close(self) -> None:
        for task in list(self._later):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
