"""Mounts the sandbox under /sandbox/: the WeCom/Official Account emulator, the callback simulator that tells
our own /callback/wecom about new 微信客服 messages exactly as WeCom does, and the chat page.

Only in sandbox mode (the control routes are unauthenticated by design: nothing real is behind them).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from bots.outbound.models import kf_windows
from bots.sandbox.emulator import create_emulator_app
from bots.sandbox.keys import SANDBOX_STATE
from bots.sandbox.simulator import CallbackSimulator, kf_callback_hook, wecom_event_hook
from bots.sandbox.state import SandboxState
from scrm.core.http.keys import RUNTIME, SETTINGS
from scrm.core.runtime import Runtime

log = logging.getLogger(__name__)


def setup(app: web.Application) -> SandboxState:
    settings = app[SETTINGS]

    def now() -> dt.datetime:
        # The product's clock once it runs, so both sides agree on time (tests freeze it).
        return app[RUNTIME].clock.now() if RUNTIME in app else dt.datetime.now(dt.UTC)

    state = SandboxState.from_settings(settings, now=now)
    state.public_base = settings.base_url
    state.seed_demo()
    sim = CallbackSimulator(
        settings.wecom_token.get(),
        settings.wecom_aes_key.get(),
        settings.wecom_corp_id,
        now=now,  # the product's clock, so its timestamp window accepts the callback
        agent_id=settings.wecom_agent_id,
    )

    async def session():  # type: ignore[no-untyped-def]
        return await app[RUNTIME].http_session()

    state.on_kf_message = kf_callback_hook(sim, f"{settings.base_url}/callback/wecom", session)
    state.on_wecom_event = wecom_event_hook(sim, f"{settings.base_url}/callback/wecom", session)
    app[SANDBOX_STATE] = state

    async def remember_kf_windows(app: web.Application) -> AsyncIterator[None]:
        try:
            await restore_kf_windows(state, app[RUNTIME])  # after the runtime's context: its database is open
        except (OSError, SQLAlchemyError) as exc:  # the database is down: start anyway (callbacks answer 503 until it is back)
            log.warning("sandbox: 微信客服 windows not restored (database unavailable)", extra={"error": str(exc)})
        yield

    app.cleanup_ctx.append(remember_kf_windows)
    app.add_subapp("/sandbox/", create_emulator_app(state))
    return state


async def restore_kf_windows(state: SandboxState, rt: Runtime) -> int:
    """Give a freshly started emulator the 微信客服 windows it had before the restart. The emulator keeps its state
    in memory, but every customer message it ever delivered was synced and stored by the product, which records
    the window in ``kf_windows`` in the same transaction (``bots.outbound.services.record_customer_message``):
    a customer who wrote 20 minutes before ``run.py`` restarted can still be answered, as in the real WeCom."""
    still_open = state.now() - state.kf_window
    async with rt.db.read() as conn:
        rows = (await conn.execute(sa.select(kf_windows).where(kf_windows.c.last_customer_msg_at > still_open))).all()
    return state.restore_kf_windows((r.open_kfid, r.external_userid, r.last_customer_msg_at, r.sent_since_customer_msg) for r in rows)
