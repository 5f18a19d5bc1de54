"""微信客服 customer profiles: when each customer's nickname and avatar were last fetched (kf/customer/batchget)

Revision ID: 0013_kf_profiles
Revises: 0012
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

import scrm.core.db

revision = "0013_kf_profiles"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'kf_profile_fetches',
        sa.Column('external_userid', sa.String(length=64), nullable=False),
        sa.Column('fetched_at', scrm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('found', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('external_userid', name=op.f('pk_kf_profile_fetches')),
    )


def downgrade() -> None:
    op.drop_table('kf_profile_fetches')
