"""Tag rules in the database, versioned (tag_rule_versions): the console saves a new version instead of writing
config/tag_rules.toml, which now only seeds the first version

Revision ID: 0010_tag_rule_versions
Revises: 0009
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

import scrm.core.db

revision = '0010_tag_rule_versions'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'tag_rule_versions',
        sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('digest', sa.String(length=16), nullable=False),
        sa.Column('rules', sa.Integer(), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('restored_from', sa.Integer(), nullable=True),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('created_at', scrm.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('version', name=op.f('pk_tag_rule_versions')),
    )


def downgrade() -> None:
    op.drop_table('tag_rule_versions')
