"""Alembic environment. Migrations run on a connection handed in by ``scrm.core.migrate`` (async engines), or
on a fresh sync engine when invoked from the ``alembic`` CLI."""

from __future__ import annotations

import importlib

from alembic import context
from sqlalchemy import create_engine

from scrm.core.db import metadata

# Every module that declares tables; migrations are the one place (besides run.py) that sees them all.
MODEL_MODULES = [
    "scrm.core.outbox",
    "scrm.core.audit",
    "fulfillment.sequences",
    "bots.contacts.models",
    "bots.dialogue.models",
    "bots.gateway.models",
    "bots.kf.models",
    "bots.outbound.models",
    "fulfillment.billing.models",
    "fulfillment.catalog.models",
    "fulfillment.inventory.models",
    "fulfillment.orders.models",
    "fulfillment.purchasing.models",
    "scrm.campaigns.broadcasts.models",
    "scrm.campaigns.coupons.models",
    "scrm.campaigns.referral.models",
    "scrm.crm.archive.models",
    "scrm.crm.channels.models",
    "scrm.crm.customers.models",
    "scrm.crm.groups.models",
    "scrm.crm.staff.models",
    "scrm.crm.tags.models",
    "scrm.crm.timeline.models",
    "scrm.governance.approvals.models",
    "scrm.sales.pipeline.models",
    "scrm.sales.quotes.models",
    "scrm.governance.fields.models",
    "scrm.governance.tokens.models",
    "scrm.sales.followups.models",
    "scrm.sales.leads.models",
    "scrm.sales.repurchase.models",
    "scrm.sales.handover.models",
    "tagging.activity.models",
    "tagging.rfm.models",
    "tagging.rules.models",
    "tagging.segments.models",
]
for _name in MODEL_MODULES:
    importlib.import_module(_name)
target_metadata = metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.config.get_main_option("sqlalchemy.url") or ""
    url = url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)
