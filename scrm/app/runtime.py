"""Composition: build the Runtime with every feature package's jobs, handlers and API clients registered."""

from __future__ import annotations

import asyncio
import importlib
import logging

from config import Settings
from scrm.core import migrate, outbox
from scrm.core.clock import Clock
from scrm.core.db import Database
from scrm.core.jobs import InProcessQueue, make_queue
from scrm.core.runtime import Runtime

log = logging.getLogger(__name__)

# Modules that register jobs, crons and outbox handlers when imported. Composition lives here and in run.py.
FEATURE_MODULES = [
    "scrm.core.outbox",
    "bots.gateway.processing",
    "bots.dialogue.ordering",
    "bots.dialogue.order_status",
    "bots.kf.services",
    "bots.notices.orders",
    "fulfillment.orders.jobs",
    "bots.contacts.customers",
    "bots.contacts.groups",
    "bots.contacts.tags",
    "bots.contacts.timeline",
    "scrm.campaigns.coupons.services",
    "bots.dialogue.coupons",
    "scrm.campaigns.referral",
    "bots.contacts.referral",
    "fulfillment.billing.jobs",
    "bots.notices.billing",
    "bots.dialogue.balance",
    "tagging.rules.jobs",
    "tagging.rfm.jobs",
    "bots.notices.broadcasts",
]


class NotMigrated(Exception):
    pass


def load_features() -> None:
    for name in FEATURE_MODULES:
        importlib.import_module(name)


def sandbox_api_bases(settings: Settings) -> tuple[str, str]:
    base = settings.base_url
    return (
        settings.wecom_api_base or f"{base}/sandbox/wecom/cgi-bin/",
        settings.mp_api_base or f"{base}/sandbox/mp/cgi-bin/",
    )


async def build_runtime(settings: Settings, clock: Clock | None = None, *, check_migrations: bool = True) -> Runtime:
    """Open the database and the job queue and set up API clients. Does not start consuming jobs."""
    from bots.outbound.client import MP_API, WECOM_API, MpApi, WeComApi

    load_features()
    db = Database(settings.database_url)
    if check_migrations and not await migrate.is_current(db):
        if db.is_sqlite:
            log.info("migrating the embedded SQLite database to the current schema")
            await migrate.upgrade(db)
        else:
            current = await migrate.current_revision(db)
            await db.dispose()
            raise NotMigrated(
                f"database is at revision {current or 'empty'}, the code needs {migrate.head_revision()}: run `python run.py migrate` first"
            )
    rt = Runtime(settings=settings, db=db, clock=clock or Clock(), jobs=make_queue(settings))
    from scrm.campaigns.coupons.discounts import install as install_coupons

    install_coupons(rt)  # orders ask this provider which coupon applies (fulfillment may not import scrm)
    wecom_base, mp_base = sandbox_api_bases(settings)
    backoff = settings.wecom_rate_limit_backoff
    if settings.wecom_enabled:
        secret = settings.wecom_secret.get()
        rt.put(WECOM_API, WeComApi(wecom_base, settings.wecom_corp_id, secret, rt.http_session, rate_limit_backoff=backoff))
    if settings.mp_enabled:
        rt.put(MP_API, MpApi(mp_base, settings.mp_app_id, settings.mp_secret.get(), rt.http_session, rate_limit_backoff=backoff))
    return rt


async def start_inprocess_work(rt: Runtime) -> list[asyncio.Task[None]]:
    """Embedded mode: consume jobs and run the outbox relay in this process."""
    tasks: list[asyncio.Task[None]] = []
    if isinstance(rt.jobs, InProcessQueue):
        await rt.jobs.start(rt)
        tasks.append(asyncio.create_task(outbox.relay_forever(rt), name="outbox-relay"))
    return tasks
