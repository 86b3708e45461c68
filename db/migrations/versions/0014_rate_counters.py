"""rate_counters: the rate limits' counts, shared by every web process

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'rate_counters',
        sa.Column('limiter', sa.String(length=32), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('hits', sa.Integer(), nullable=False),
        sa.Column('window_ends_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('limiter', 'key', name=op.f('pk_rate_counters')),
    )
    op.create_index('ix_rate_counters_window_ends', 'rate_counters', ['window_ends_at'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_rate_counters_window_ends', table_name='rate_counters')
    op.drop_table('rate_counters')
