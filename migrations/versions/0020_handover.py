"""Handover (在职转接 / 离职继承): batches and per-customer transfers with their WeCom status

Revision ID: 0020_handover
Revises: 0019_pipeline
Create Date: 2026-12-08
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import scrm.core.db  # noqa: F401

revision = "0020_handover"
down_revision = "0019_pipeline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
