"""RFM cut points: the last full scoring's cut points, so the nightly re-checks only the customers they can move

Revision ID: 0014_rfm_cut_points
Revises: 0013_kf_profiles
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import scrm.core.db

revision = "0014_rfm_cut_points"
down_revision = "0013_kf_profiles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'rfm_cut_points',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('scored_at', scrm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('method', sa.String(length=16), nullable=False),
        sa.Column('window_days', sa.Integer(), nullable=False),
        sa.Column('high_score', sa.SmallInteger(), nullable=False),
        sa.Column('last_order_day', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
        sa.Column('frequency', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
        sa.Column('monetary_fen', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_rfm_cut_points')),
    )


def downgrade() -> None:
    op.drop_table('rfm_cut_points')
