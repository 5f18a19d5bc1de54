"""Handover (在职转接 / 离职继承): batches and per-customer transfers with their WeCom status

Revision ID: 0020_handover
Revises: 0019_pipeline
Create Date: 2026-12-08
"""
import sqlalchemy as sa
from alembic import op

import scrm.core.db

revision = "0020_handover"
down_revision = "0019_pipeline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handovers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("from_userid", sa.String(length=64), nullable=False),
        sa.Column("to_userid", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", scrm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", scrm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", scrm.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handovers")),
    )
    with op.batch_alter_table("handovers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_handovers_from_userid"), ["from_userid"], unique=False)
        batch_op.create_index(batch_op.f("ix_handovers_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_handovers_to_userid"), ["to_userid"], unique=False)
    op.create_table(
        "handover_customers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("handover_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("external_userid", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("errcode", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=200), server_default="", nullable=False),
        sa.Column("sent_at", scrm.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", scrm.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", scrm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["handover_id"], ["handovers.id"], name=op.f("fk_handover_customers_handover_id_handovers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handover_customers")),
        sa.UniqueConstraint("handover_id", "external_userid", name=op.f("uq_handover_customers_handover_id_external_userid")),
    )
    with op.batch_alter_table("handover_customers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_handover_customers_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index("ix_handover_customers_status", ["status", "external_userid"], unique=False)
    op.create_table(
        "handover_groups",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("handover_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), server_default="", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("errcode", sa.Integer(), nullable=True),
        sa.Column("updated_at", scrm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["handover_id"], ["handovers.id"], name=op.f("fk_handover_groups_handover_id_handovers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handover_groups")),
        sa.UniqueConstraint("handover_id", "chat_id", name=op.f("uq_handover_groups_handover_id_chat_id")),
    )


def downgrade() -> None:
    op.drop_table("handover_groups")
    with op.batch_alter_table("handover_customers", schema=None) as batch_op:
        batch_op.drop_index("ix_handover_customers_status")
        batch_op.drop_index(batch_op.f("ix_handover_customers_customer_id"))
    op.drop_table("handover_customers")
    with op.batch_alter_table("handovers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_handovers_to_userid"))
        batch_op.drop_index(batch_op.f("ix_handovers_status"))
        batch_op.drop_index(batch_op.f("ix_handovers_from_userid"))
    op.drop_table("handovers")
