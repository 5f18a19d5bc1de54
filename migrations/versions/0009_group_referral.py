"""Group referral: referral campaigns of kind "group" (personal 加入群聊 join codes into chat_ids) and the group
an invite joined

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('referral_campaigns') as batch:
        batch.add_column(sa.Column('kind', sa.String(16), nullable=False, server_default='contact'))
        batch.add_column(sa.Column('chat_ids', JSON, nullable=True))
    with op.batch_alter_table('referral_invites') as batch:
        batch.add_column(sa.Column('chat_id', sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('referral_invites') as batch:
        batch.drop_column('chat_id')
    with op.batch_alter_table('referral_campaigns') as batch:
        batch.drop_column('chat_ids')
        batch.drop_column('kind')
