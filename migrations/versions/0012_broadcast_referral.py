"""Broadcasts with a referral poster (附带邀请海报): the referral campaign whose personal code and poster link each
recipient gets

Revision ID: 0012
Revises: 0011_campaign_runs
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011_campaign_runs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('broadcasts') as batch:
        batch.add_column(sa.Column('referral_campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch.create_foreign_key('fk_broadcasts_referral_campaign_id_referral_campaigns', 'referral_campaigns', ['referral_campaign_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('broadcasts') as batch:
        batch.drop_constraint('fk_broadcasts_referral_campaign_id_referral_campaigns', type_='foreignkey')
        batch.drop_column('referral_campaign_id')
