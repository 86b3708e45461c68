"""notification delivery, staff addresses, KPI snapshots, scheduler leases

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 21:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email', sa.String(length=200), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('locale', sa.String(length=8), nullable=False, server_default=''))

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('case_id', existing_type=sa.String(length=32), nullable=True)
        batch_op.add_column(sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('claim_token', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('delivered', sa.JSON(), nullable=False, server_default='[]'))

    op.create_table('kpi_snapshots',
    sa.Column('day', sa.DateTime(timezone=True), nullable=False),
    sa.Column('opened', sa.Integer(), nullable=False),
    sa.Column('closed', sa.Integer(), nullable=False),
    sa.Column('clocks_met', sa.Integer(), nullable=False),
    sa.Column('clocks_breached', sa.Integer(), nullable=False),
    sa.Column('ratings', sa.Integer(), nullable=False),
    sa.Column('satisfied', sa.Integer(), nullable=False),
    sa.Column('rating_sum', sa.Integer(), nullable=False),
    sa.Column('overdue_open', sa.Integer(), nullable=False),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_kpi_snapshots'))
    )
    op.create_table('scheduler_leases',
    sa.Column('job', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=64), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('run_key', sa.String(length=64), nullable=True),
    sa.Column('done_key', sa.String(length=64), nullable=True),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('job', name=op.f('pk_scheduler_leases'))
    )


def downgrade() -> None:
    op.drop_table('scheduler_leases')
    op.drop_table('kpi_snapshots')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('delivered')
        batch_op.drop_column('last_error')
        batch_op.drop_column('claim_token')
        batch_op.drop_column('claimed_until')
        batch_op.alter_column('case_id', existing_type=sa.String(length=32), nullable=False)

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('locale')
        batch_op.drop_column('email')
