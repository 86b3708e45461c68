"""users.display_name for replies; event_subscriptions and event_cursors for events out

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 14:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('display_name', sa.String(length=40), nullable=False,
                                   server_default=''))
    op.create_table(
        'event_subscriptions',
        sa.Column('url', sa.String(length=500), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('low_water', sa.Integer(), nullable=False),
        sa.Column('start_id', sa.Integer(), nullable=False),
        sa.Column('horizon_id', sa.Integer(), nullable=False),
        sa.Column('horizon_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('state', sa.String(length=8), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint('url', name=op.f('pk_event_subscriptions')),
    )
    op.create_table(
        'event_cursors',
        sa.Column('url', sa.String(length=500), nullable=False),
        sa.Column('case_id', sa.String(length=32), nullable=False),
        sa.Column('last_seq', sa.Integer(), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(['url'], ['event_subscriptions.url'],
                                name=op.f('fk_event_cursors_url_event_subscriptions')),
        sa.PrimaryKeyConstraint('url', 'case_id', name=op.f('pk_event_cursors')),
    )


def downgrade() -> None:
    op.drop_table('event_cursors')
    op.drop_table('event_subscriptions')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('display_name')
