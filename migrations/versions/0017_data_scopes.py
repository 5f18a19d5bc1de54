"""Data scopes and field permissions: each staff account sees own / team / all customers (existing accounts keep
seeing all); per-role modes for the protected fields (phone, credit limit, cost) where the admin changed a default

Revision ID: 0017_data_scopes
Revises: 0016_approvals
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

import scrm.core.db

revision = "0017_data_scopes"
down_revision = "0016_approvals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data_scope", sa.String(length=8), server_default="all", nullable=False))
    op.create_table(
        "field_permissions",
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("updated_at", scrm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("role", "field", name=op.f("pk_field_permissions")),
    )


def downgrade() -> None:
    op.drop_table("field_permissions")
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.drop_column("data_scope")
