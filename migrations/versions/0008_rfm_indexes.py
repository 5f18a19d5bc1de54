"""RFM indexes: rank one customer without scanning every aggregate; age-out probes by (customer_id, confirmed_at)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_customer_order_stats_orders', 'customer_order_stats', ['orders'])
    op.create_index('ix_customer_order_stats_monetary_fen', 'customer_order_stats', ['monetary_fen'])
    op.create_index('ix_customer_order_stats_last_order_at', 'customer_order_stats', ['last_order_at'])
    op.create_index('ix_customer_order_stats_first_order_at', 'customer_order_stats', ['first_order_at'])
    op.create_index('ix_orders_customer_confirmed', 'orders', ['customer_id', 'confirmed_at'])


def downgrade() -> None:
    op.drop_index('ix_orders_customer_confirmed', table_name='orders')
    op.drop_index('ix_customer_order_stats_first_order_at', table_name='customer_order_stats')
    op.drop_index('ix_customer_order_stats_last_order_at', table_name='customer_order_stats')
    op.drop_index('ix_customer_order_stats_monetary_fen', table_name='customer_order_stats')
    op.drop_index('ix_customer_order_stats_orders', table_name='customer_order_stats')
