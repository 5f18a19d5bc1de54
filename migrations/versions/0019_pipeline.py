"""Opportunities (商机) with configurable stages, and quotes (报价单)

Revision ID: 0019_pipeline
Revises: 0018_leads
Create Date: 2026-12-08
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import scrm.core.db  # noqa: F401

revision = "0019_pipeline"
down_revision = "0018_leads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
