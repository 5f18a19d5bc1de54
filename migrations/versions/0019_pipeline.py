"""Opportunities (商机) with configurable stages, and quotes (报价单)

Revision ID: 0019_pipeline
Revises: 0018_leads
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import scrm.core.db

revision = "0019_pipeline"
down_revision = "0018_leads"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "opportunity_stages",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("probability_pct", sa.Integer(), nullable=False),
        sa.Column("is_won", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("is_lost", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opportunity_stages")),
        sa.UniqueConstraint("key", name=op.f("uq_opportunity_stages_key")),
    )
    op.create_table(
        "opportunities",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("lead_id", BigId, nullable=True),
        sa.Column("owner_userid", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("expected_close_on", sa.Date(), nullable=True),
        sa.Column("probability_pct", sa.Integer(), nullable=False),
        sa.Column("probability_overridden", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("products", JSON, nullable=False),
        sa.Column("close_reason", sa.String(length=300), server_default="", nullable=False),
        sa.Column("closed_at", scrm.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", scrm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), server_default="", nullable=False),
        sa.Column("updated_at", scrm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opportunities")),
    )
    with op.batch_alter_table("opportunities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_opportunities_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_opportunities_owner_userid"), ["owner_userid"], unique=False)
    op.create_table(
        "opportunity_history",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("opportunity_id", BigId, nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("from_value", sa.String(length=64), server_default="", nullable=False),
        sa.Column("to_value", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("note", sa.String(length=300), server_default="", nullable=False),
        sa.Column("at", scrm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opportunity_history")),
    )
    with op.batch_alter_table("opportunity_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_opportunity_history_opportunity_id"), ["opportunity_id"], unique=False)
    op.create_table(
        "quotes",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("opportunity_id", BigId, nullable=True),
        sa.Column("owner_userid", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("subtotal_fen", sa.BigInteger(), nullable=False),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.Column("max_discount_bp", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(length=500), server_default="", nullable=False),
        sa.Column("order_number", sa.String(length=32), nullable=True),
        sa.Column("accepted_at", scrm.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("accepted_by", sa.String(length=64), server_default="", nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", scrm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), server_default="", nullable=False),
        sa.Column("updated_at", scrm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quotes")),
        sa.UniqueConstraint("number", name=op.f("uq_quotes_number")),
    )
    with op.batch_alter_table("quotes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quotes_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_quotes_opportunity_id"), ["opportunity_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_quotes_owner_userid"), ["owner_userid"], unique=False)
    op.create_table(
        "quote_lines",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("quote_id", BigId, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("list_price_fen", sa.BigInteger(), nullable=False),
        sa.Column("unit_price_fen", sa.BigInteger(), nullable=False),
        sa.Column("discount_bp", sa.Integer(), nullable=False),
        sa.Column("line_total_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quote_lines")),
    )
    with op.batch_alter_table("quote_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quote_lines_quote_id"), ["quote_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("quote_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quote_lines_quote_id"))
    op.drop_table("quote_lines")
    with op.batch_alter_table("quotes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quotes_owner_userid"))
        batch_op.drop_index(batch_op.f("ix_quotes_opportunity_id"))
        batch_op.drop_index(batch_op.f("ix_quotes_customer_id"))
    op.drop_table("quotes")
    with op.batch_alter_table("opportunity_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_opportunity_history_opportunity_id"))
    op.drop_table("opportunity_history")
    with op.batch_alter_table("opportunities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_opportunities_owner_userid"))
        batch_op.drop_index(batch_op.f("ix_opportunities_customer_id"))
    op.drop_table("opportunities")
    op.drop_table("opportunity_stages")
