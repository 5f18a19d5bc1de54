"""Composition: build the Runtime with every capability's jobs, crons, outbox handlers, inbound processors and the
WeCom-side implementations of the features' ports installed — explicitly, here; nothing registers itself on import.

A new outbox handler or cron goes into its capability's ``jobs.py`` (``JOBS``, ``CRONS``, ``HANDLERS``, and for
inbound events ``PROCESSORS``); a capability with a new ``jobs.py`` is added to :data:`CAPABILITY_JOBS`.
"""

from __future__ import annotations

import asyncio
import logging
from types import ModuleType

from bots.approvals import jobs as approvals_jobs
from bots.contacts import jobs as contacts_jobs
from bots.contacts.channel_codes import WeComChannelCodes
from bots.contacts.handover import WeComTransfers
from bots.contacts.referral import WeComGroupJoinWays, WeComReferralWays
from bots.contacts.tags import create_corp_tag
from bots.dialogue import balance as balance_skill
from bots.dialogue import coupons as coupons_skill
from bots.dialogue import inquiries as inquiries_skill
from bots.dialogue import jobs as dialogue_jobs
from bots.dialogue import order_status as order_status_skill
from bots.dialogue import ordering as ordering_skill
from bots.dialogue import referral as referral_skill
from bots.dialogue import router as dialogue_router
from bots.gateway import jobs as gateway_jobs
from bots.gateway.processing import install_processors
from bots.kf import jobs as kf_jobs
from bots.notices import jobs as notices_jobs
from bots.notices.broadcasts import channel_facts
from bots.outbound.client import MP_API, WECOM_API, MpApi, WeComApi
from bots.outbound.media import MEDIA_CACHE, MediaCache
from config import Settings
from fulfillment.billing import jobs as billing_jobs
from fulfillment.billing.services import credit_exposure, has_credit_limit
from fulfillment.catalog import jobs as catalog_jobs
from fulfillment.orders import jobs as orders_jobs
from fulfillment.orders.services import install_credit_check
from fulfillment.purchasing import jobs as purchasing_jobs
from scrm.campaigns.broadcasts.services import CHANNEL_FACTS
from scrm.campaigns.coupons import jobs as coupons_jobs
from scrm.campaigns.coupons.discounts import install as install_coupons
from scrm.campaigns.referral import jobs as referral_jobs
from scrm.campaigns.referral.services import CONTACT_WAY_MAKER, JOIN_WAY_MAKER
from scrm.core import outbox, revisions
from scrm.core.clock import Clock
from scrm.core.db import Database
from scrm.core.jobs import InProcessQueue, Registry, make_queue
from scrm.core.runtime import Runtime
from scrm.crm.archive import jobs as archive_jobs
from scrm.crm.channels.services import CHANNEL_CODES
from scrm.crm.groups import jobs as groups_jobs
from scrm.crm.tags import jobs as tags_jobs
from scrm.crm.tags.services import CORP_TAG_CREATOR
from scrm.governance.audit import jobs as audit_jobs
from scrm.sales.followups import jobs as followups_jobs
from scrm.sales.handover import jobs as handover_jobs
from scrm.sales.handover.services import TRANSFERS
from scrm.sales.leads import jobs as leads_jobs
from scrm.sales.pipeline import jobs as pipeline_jobs
from scrm.sales.quotes import jobs as quotes_jobs
from scrm.sales.repurchase import jobs as repurchase_jobs
from tagging.rules import jobs as rules_jobs
from tagging.segments import jobs as segments_jobs

log = logging.getLogger(__name__)

# Every capability that runs something in the background. Outbox handlers of one topic run in this order (an
# order shipped: the customer is told before billing invoices it), so keep it.
CAPABILITY_JOBS: tuple[ModuleType, ...] = (
    outbox,
    tags_jobs,
    groups_jobs,
    archive_jobs,
    gateway_jobs,
    dialogue_jobs,
    kf_jobs,
    notices_jobs,
    orders_jobs,
    purchasing_jobs,
    catalog_jobs,
    contacts_jobs,
    coupons_jobs,
    referral_jobs,
    billing_jobs,
    rules_jobs,
    segments_jobs,
    audit_jobs,
    approvals_jobs,
    leads_jobs,
    followups_jobs,
    repurchase_jobs,
    handover_jobs,
    pipeline_jobs,
    quotes_jobs,
)
# Every skill of the chat dialogue (help and greeting live in the router).
DIALOGUE_SKILLS: tuple[ModuleType, ...] = (
    dialogue_router,
    inquiries_skill,
    ordering_skill,
    order_status_skill,
    balance_skill,
    coupons_skill,
    referral_skill,
)
# Every capability whose inbound events (channel, kind) it processes.
CAPABILITY_PROCESSORS: tuple[ModuleType, ...] = (dialogue_jobs, kf_jobs, contacts_jobs, approvals_jobs)


def build_registry() -> Registry:
    return Registry.collect(CAPABILITY_JOBS)


class NotMigrated(Exception):
    pass


def sandbox_api_bases(settings: Settings) -> tuple[str, str]:
    base = settings.base_url
    return (
        settings.wecom_api_base or f"{base}/sandbox/wecom/cgi-bin/",
        settings.mp_api_base or f"{base}/sandbox/mp/cgi-bin/",
    )


async def build_runtime(settings: Settings, clock: Clock | None = None, *, check_migrations: bool = True) -> Runtime:
    """Open the database and the job queue and set up API clients. Does not start consuming jobs."""
    db = Database(settings.database_url)
    if check_migrations and not await revisions.is_current(db):  # read without alembic (≈10 MiB a process)
        if db.is_sqlite:
            from scrm.core import migrate

            log.info("migrating the embedded SQLite database to the current schema")
            await migrate.upgrade(db)
        else:
            current, head = await revisions.current_revision(db), revisions.head_revision()
            await db.dispose()
            raise NotMigrated(f"database is at revision {current or 'empty'}, the code needs {head}: run `python run.py migrate` first")
    registry = build_registry()
    rt = Runtime(settings=settings, db=db, clock=clock or Clock(), jobs=make_queue(settings, registry), registry=registry)
    install_ports(rt)
    rt.put(MEDIA_CACHE, MediaCache())  # media_ids of uploaded pictures (posters), shared by both API clients
    wecom_base, mp_base = sandbox_api_bases(settings)
    backoff = settings.wecom_rate_limit_backoff
    if settings.wecom_enabled:
        secret = settings.wecom_secret.get()
        rt.put(WECOM_API, WeComApi(wecom_base, settings.wecom_corp_id, secret, rt.http_session, rate_limit_backoff=backoff))
    if settings.mp_enabled:
        rt.put(MP_API, MpApi(mp_base, settings.mp_app_id, settings.mp_secret.get(), rt.http_session, rate_limit_backoff=backoff))
    return rt


def install_ports(rt: Runtime) -> None:
    """The implementations a capability needs from one it may not import, put on the runtime."""
    install_coupons(rt)  # orders ask this provider which coupon applies (fulfillment may not import scrm)
    install_credit_check(rt, credit_exposure, has_credit_limit)  # orders check the credit limit billing keeps (billing reads orders)
    install_processors(rt, [p for module in CAPABILITY_PROCESSORS for p in module.PROCESSORS])
    dialogue_router.install_intents(rt, [i for module in DIALOGUE_SKILLS for i in module.INTENTS])
    rt.put(CHANNEL_CODES, WeComChannelCodes())  # channel codes are WeCom contact ways
    rt.put(CORP_TAG_CREATOR, create_corp_tag)  # mirrored tags are WeCom corp tags
    rt.put(CONTACT_WAY_MAKER, WeComReferralWays())  # referral codes: 联系我 ways …
    rt.put(JOIN_WAY_MAKER, WeComGroupJoinWays())  # … and 加入群聊 ways for group campaigns
    rt.put(CHANNEL_FACTS, channel_facts)  # what broadcast planning must know of each customer's channels
    rt.put(TRANSFERS, WeComTransfers())  # handovers are WeCom's customer and group transfers


async def start_inprocess_work(rt: Runtime) -> list[asyncio.Task[None]]:
    """Embedded mode: consume jobs and run the outbox relay in this process."""
    tasks: list[asyncio.Task[None]] = []
    if isinstance(rt.jobs, InProcessQueue):
        await rt.jobs.start(rt)
        tasks.append(asyncio.create_task(outbox.relay_forever(rt), name="outbox-relay"))
    return tasks
