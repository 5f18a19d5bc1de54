"""Campaign runs as items: coupon_issue_runs (one row per coupon distribution to a segment, its status, counts
and why it failed) and broadcasts.error (why a broadcast stopped — was kept in totals["error"], moved here)

Revision ID: 0011_campaign_runs
Revises: 0010_tag_rule_versions
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import scrm.core.db

revision = "0011_campaign_runs"
down_revision = "0010_tag_rule_versions"
branch_labels = None
depends_on = None

_broadcasts = sa.table(
    "broadcasts",
    sa.column("id", sa.BigInteger()),
    sa.column("totals", scrm.core.db.JSON),
    sa.column("error", sa.Text()),
)


def upgrade() -> None:
    op.create_table(
        "coupon_issue_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("template_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_ref", sa.String(length=96), nullable=False),
        sa.Column("segment", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=64), server_default="", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("matched", sa.Integer(), server_default="0", nullable=False),
        sa.Column("issued", sa.Integer(), server_default="0", nullable=False),
        sa.Column("already", sa.Integer(), server_default="0", nullable=False),
        sa.Column("skipped_limit", sa.Integer(), server_default="0", nullable=False),
        sa.Column("skipped_budget", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failures", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", scrm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", scrm.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", scrm.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", scrm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_issue_runs")),
        sa.UniqueConstraint("template_id", "run_ref", name=op.f("uq_coupon_issue_runs_template_id_run_ref")),
    )
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error", sa.Text(), nullable=True))
    # A failed broadcast's reason was kept in totals["error"]: move it to the column (few rows: only failed ones).
    conn = op.get_bind()
    for row in conn.execute(sa.select(_broadcasts.c.id, _broadcasts.c.totals)).all():
        totals = dict(row.totals or {})
        if "error" in totals:
            error = totals.pop("error")
            conn.execute(_broadcasts.update().where(_broadcasts.c.id == row.id).values(error=str(error) if error else None, totals=totals))


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(_broadcasts.c.id, _broadcasts.c.totals, _broadcasts.c.error).where(_broadcasts.c.error.is_not(None))
    ).all()
    for row in rows:
        conn.execute(_broadcasts.update().where(_broadcasts.c.id == row.id).values(totals={**dict(row.totals or {}), "error": row.error}))
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.drop_column("error")
    op.drop_table("coupon_issue_runs")
