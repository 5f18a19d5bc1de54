"""Repurchase alerts (复购预警): predicted next purchase per customer × product, due and at-risk alerts

Revision ID: 0021_repurchase
Revises: 0020_handover
Create Date: 2026-12-08
"""
import sqlalchemy as sa
from alembic import op

import scrm.core.db

revision = "0021_repurchase"
down_revision = "0020_handover"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "repurchase_alerts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), server_default="", nullable=False),
        sa.Column("owner_userid", sa.String(length=64), server_default="", nullable=False),
        sa.Column("last_purchase_on", sa.Date(), nullable=False),
        sa.Column("interval_days", sa.Integer(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("coupon_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", scrm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", scrm.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=64), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repurchase_alerts")),
        sa.UniqueConstraint(
            "customer_id", "sku", "kind", "last_purchase_on", name=op.f("uq_repurchase_alerts_customer_id_sku_kind_last_purchase_on")
        ),
    )
    with op.batch_alter_table("repurchase_alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_repurchase_alerts_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index("ix_repurchase_alerts_status_owner", ["status", "owner_userid"], unique=False)
    op.create_table(
        "repurchase_predictions",
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), server_default="", nullable=False),
        sa.Column("purchases", sa.Integer(), nullable=False),
        sa.Column("last_purchase_on", sa.Date(), nullable=False),
        sa.Column("interval_days", sa.Integer(), nullable=True),
        sa.Column("basis", sa.String(length=8), nullable=False),
        sa.Column("next_due_on", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("computed_at", scrm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "sku", name=op.f("pk_repurchase_predictions")),
    )
    with op.batch_alter_table("repurchase_predictions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_repurchase_predictions_status"), ["status"], unique=False)
    op.create_table(
        "repurchase_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_days", sa.Integer(), server_default="3", nullable=False),
        sa.Column("coupon_template_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("updated_at", scrm.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_by", sa.String(length=64), server_default="", nullable=False),
        sa.Column("recomputed_on", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repurchase_settings")),
    )


def downgrade() -> None:
    op.drop_table("repurchase_settings")
    with op.batch_alter_table("repurchase_predictions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_repurchase_predictions_status"))
    op.drop_table("repurchase_predictions")
    with op.batch_alter_table("repurchase_alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_repurchase_alerts_status_owner")
        batch_op.drop_index(batch_op.f("ix_repurchase_alerts_customer_id"))
    op.drop_table("repurchase_alerts")
