"""Leads (线索), assignment rules, the public pool (公海) and follow-ups (跟进记录)

Revision ID: 0018_leads
Revises: 0017_data_scopes
Create Date: 2026-12-08
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import scrm.core.db  # noqa: F401

revision = "0018_leads"
down_revision = "0017_data_scopes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
