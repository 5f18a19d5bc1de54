"""The app factory: ``create_app(settings)`` builds the whole web application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from config import Settings
from scrm.app.runtime import build_runtime, start_inprocess_work
from scrm.core import metrics, outbox
from scrm.core.clock import Clock
from scrm.core.http.errors import error_middleware
from scrm.core.http.keys import RUNTIME, SETTINGS
from scrm.core.http.limits import body_deadline_middleware, reject_nul_middleware
from scrm.core.http.proxy import TRUSTED_PROXIES, forwarded_middleware, parse_trusted
from scrm.core.runtime import Runtime
from scrm.governance.audit.edge import audit_middleware
from scrm.governance.tokens.web import api_auth_middleware

log = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    checks: dict[str, str] = {}
    ok = True
    try:
        await asyncio.wait_for(rt.db.ping(), 3)
        checks["database"] = "ok"
    except Exception as exc:
        ok = False
        checks["database"] = f"error: {type(exc).__name__}"
    if rt.settings.redis_url:
        try:
            await asyncio.wait_for(rt.jobs.ping(), 3)
            checks["redis"] = "ok"
        except Exception as exc:
            ok = False
            checks["redis"] = f"error: {type(exc).__name__}"
    else:
        checks["redis"] = "not configured (in-process jobs)"
    return web.json_response({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)


async def metrics_view(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    with contextlib.suppress(Exception):
        metrics.outbox_pending.set(await outbox.pending_count(rt))
    return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(settings: Settings, *, clock: Clock | None = None, runtime: Runtime | None = None) -> web.Application:
    """Build the application. Resources (database, job queue, HTTP clients) open in a cleanup context and close
    with the app. Pass ``runtime`` to share one already built (tests, ``run.py demo``)."""
    from bots.dialogue.catalog_cache import parser_cache
    from bots.gateway import web as bots_web
    from fulfillment import web as fulfillment_web
    from fulfillment.billing import web as billing_web
    from fulfillment.catalog.services import seed_sample_if_empty
    from fulfillment.purchasing import web as purchasing_web
    from scrm.app import ops_web as api
    from scrm.campaigns.broadcasts import web as broadcasts_web
    from scrm.campaigns.coupons import web as coupons_web
    from scrm.campaigns.referral import web as referral_campaigns_web
    from scrm.console import approvals as console_approvals
    from scrm.console import auth as console_auth
    from scrm.console import broadcasts as console_broadcasts
    from scrm.console import campaigns as console_campaigns
    from scrm.console import channels as console_channels
    from scrm.console import customer_picker as console_customer_picker
    from scrm.console import customers as console_customers
    from scrm.console import dashboard as console_dashboard
    from scrm.console import finance as console_finance
    from scrm.console import governance as console_governance
    from scrm.console import groups as console_groups
    from scrm.console import handovers as console_handovers
    from scrm.console import leads as console_leads
    from scrm.console import pipeline as console_pipeline
    from scrm.console import products as console_products
    from scrm.console import purchasing as console_purchasing
    from scrm.console import quote_pages as console_quotes
    from scrm.console import repurchase as console_repurchase
    from scrm.console import rules as console_rules
    from scrm.console import segments as console_segments
    from scrm.console import staff as console_staff
    from scrm.console import web as console_web
    from scrm.crm.archive import web as archive_web
    from scrm.crm.channels import web as channels_web
    from scrm.crm.tags import web as tags_web
    from scrm.customer360 import web as customers_api
    from scrm.governance.approvals import web as approvals_web
    from scrm.governance.audit import web as audit_web
    from scrm.governance.tokens import web as tokens_web
    from scrm.sales.followups import web as followups_web
    from scrm.sales.handover import web as handover_web
    from scrm.sales.leads import web as leads_web
    from scrm.sales.pipeline import web as pipeline_web
    from scrm.sales.quotes import share as quotes_share
    from scrm.sales.quotes import web as quotes_web
    from scrm.sales.repurchase import web as repurchase_web
    from scrm.sidebar import web as sidebar_web
    from tagging.rules.engine import tagger_cache
    from tagging.segments import web as tagging_web

    app = web.Application(
        middlewares=[
            forwarded_middleware,
            error_middleware,
            body_deadline_middleware,
            audit_middleware,  # every request in an audit scope; api_auth and the console/sidebar guards say who acts
            api_auth_middleware,
            reject_nul_middleware,
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[TRUSTED_PROXIES] = parse_trusted(settings.trusted_proxies)  # a bad entry fails the start, naming it

    async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
        owned = runtime is None
        rt = runtime or await build_runtime(settings, clock)
        app[RUNTIME] = rt
        tasks = await start_inprocess_work(rt) if owned else []
        if owned and settings.is_sandbox:
            async with rt.db.write() as conn:
                await seed_sample_if_empty(conn, rt.db.dialect, rt.clock.now())
        if owned and tasks:
            # This process reads the customers' messages (in-process jobs): load jieba (≈1 s, ≈60 MiB) in a thread
            # now, not on the first customer's message. With Redis the workers read them (scrm.app.worker warms
            # up there), and a server loads jieba only if a console page asks (tag rules: test, dry run).
            tasks.append(asyncio.create_task(parser_cache(rt).warm_up(rt), name="warm-up-parser"))
            tasks.append(asyncio.create_task(tagger_cache(rt).warm_up(rt), name="warm-up-tagger"))
        if settings.is_sandbox:
            log.info(
                "sandbox mode: no WeCom credentials configured; WeCom and WeChat are emulated",
                extra={"sandbox_url": f"{settings.base_url}/sandbox/"},
            )
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if owned:
            await rt.close()

    app.cleanup_ctx.append(runtime_ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    bots_web.setup_routes(app)
    api.setup_routes(app)
    customers_api.setup_routes(app)
    fulfillment_web.setup_routes(app)
    console_web.setup_routes(app)
    console_groups.setup_routes(app)
    console_customer_picker.setup_routes(app)  # before /console/customers/{customer_id}
    console_customers.setup_routes(app)
    console_purchasing.setup_routes(app)
    console_products.setup_routes(app)
    console_dashboard.setup_routes(app)
    purchasing_web.setup_routes(app)
    coupons_web.setup_routes(app)
    referral_campaigns_web.setup_routes(app)
    broadcasts_web.setup_routes(app)
    billing_web.setup_routes(app)
    console_finance.setup_routes(app)
    console_rules.setup_routes(app)
    console_segments.setup_routes(app, roles=console_auth.MARKETING_ROLES)
    tagging_web.setup_routes(app)
    console_campaigns.setup_routes(app)
    console_channels.setup_routes(app)
    console_broadcasts.setup_routes(app)
    console_staff.setup_routes(app)
    console_governance.setup_routes(app)
    console_approvals.setup_routes(app)
    console_leads.setup_routes(app)
    console_handovers.setup_routes(app)
    archive_web.setup_routes(app)
    sidebar_web.setup_routes(app)
    tags_web.setup_routes(app)
    channels_web.setup_routes(app)
    tokens_web.setup_routes(app)
    leads_web.setup_routes(app)
    followups_web.setup_routes(app)
    audit_web.setup_routes(app)
    approvals_web.setup_routes(app)
    repurchase_web.setup_routes(app)
    console_repurchase.setup_routes(app)
    handover_web.setup_routes(app)
    pipeline_web.setup_routes(app)
    quotes_web.setup_routes(app)
    quotes_share.setup_routes(app)
    console_pipeline.setup_routes(app)
    console_quotes.setup_routes(app)
    if settings.is_sandbox:
        from bots.sandbox import web as sandbox_web

        sandbox_web.setup(app)
    return app
