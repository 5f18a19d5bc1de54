"""Repurchase alerts (复购预警): predicted next purchase per customer × product, due and at-risk alerts

Revision ID: 0021_repurchase
Revises: 0020_handover
Create Date: 2026-12-08
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import scrm.core.db  # noqa: F401

revision = "0021_repurchase"
down_revision = "0020_handover"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
