"""The sandbox WeCom emulator as a process of its own, for the multi-process test (``python -m
tests.scaleout.emulator_server PORT CALLBACK_URL [DELIVERIES]``).

In ``run.py serve`` the emulator is mounted inside the one server process; with several server processes each
would have its own state, so the test runs it here, once, and points ``SCRM_WECOM_API_BASE`` at it. A customer
message posted to ``/sandbox/api/kf/customer-message`` is announced to ``CALLBACK_URL`` with one signed, encrypted
``kf_msg_or_event`` callback delivered ``DELIVERIES`` times at once, each over a connection of its own (WeCom
retrying a callback it thinks was lost): the product must store it once, process it once and answer once.
"""

from __future__ import annotations

import asyncio
import os
import sys

import aiohttp
from aiohttp import web

from bots.sandbox.emulator import create_emulator_app
from bots.sandbox.entities import KfNotice
from bots.sandbox.simulator import CallbackSimulator, kf_msg_or_event, signed_url
from bots.sandbox.state import SandboxState
from config import load_settings


def build(callback_url: str, deliveries: int) -> web.Application:
    settings = load_settings({"SCRM_SANDBOX": "1"}, config_file=os.devnull)
    state = SandboxState.from_settings(settings)
    sim = CallbackSimulator(
        settings.wecom_token.get(), settings.wecom_aes_key.get(), settings.wecom_corp_id, agent_id=settings.wecom_agent_id
    )
    statuses: list[int] = []

    async def deliver_once(query: dict[str, str], body: bytes) -> int:
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5)) as session:
            async with session.post(signed_url(callback_url, query), data=body, headers={"Content-Type": "text/xml"}) as resp:
                await resp.read()
                return resp.status

    async def hook(notice: KfNotice) -> None:
        xml = kf_msg_or_event(notice.token, notice.open_kfid, int(sim.timestamp()), corp_id=sim.corp_id)
        query, body = sim.encrypt_post(xml)  # one callback, the same bytes every time
        got = await asyncio.gather(*(deliver_once(query, body) for _ in range(deliveries)))
        statuses.extend(got)
        if any(s != 200 for s in got):
            raise RuntimeError(f"kf_msg_or_event deliveries answered {got}")

    async def delivery_log(request: web.Request) -> web.Response:
        return web.json_response({"statuses": statuses, "calls": list(state.calls)})

    state.on_kf_message = hook
    root = web.Application()
    root.router.add_get("/deliveries", delivery_log)
    root.add_subapp("/sandbox/", create_emulator_app(state))
    return root


def main(argv: list[str]) -> None:
    port, callback_url = int(argv[0]), argv[1]
    deliveries = int(argv[2]) if len(argv) > 2 else 3
    web.run_app(build(callback_url, deliveries), host="127.0.0.1", port=port, print=None, access_log=None, shutdown_timeout=1)


if __name__ == "__main__":
    main(sys.argv[1:])
