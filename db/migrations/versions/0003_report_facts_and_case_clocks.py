"""report facts and case clocks

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 19:53:16.484149
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('case_clocks',
    sa.Column('case_id', sa.String(length=32), nullable=False),
    sa.Column('idx', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('target_s', sa.Integer(), nullable=False),
    sa.Column('used_s', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_clocks_case_id_cases')),
    sa.PrimaryKeyConstraint('case_id', 'idx', name=op.f('pk_case_clocks'))
    )
    with op.batch_alter_table('case_clocks', schema=None) as batch_op:
        batch_op.create_index('ix_case_clocks_name_state', ['name', 'state'], unique=False)

    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('fcr_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('first_response_s', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('first_response_work_s', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('resolution_s', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('resolution_work_s', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('root_cause', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('responsible_party', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('resolution_type', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('refunded', sa.Numeric(precision=12, scale=2), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('compensation_points', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('reopen_count', sa.Integer(), nullable=False, server_default='0'))



def downgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_column('reopen_count')
        batch_op.drop_column('compensation_points')
        batch_op.drop_column('refunded')
        batch_op.drop_column('resolution_type')
        batch_op.drop_column('responsible_party')
        batch_op.drop_column('root_cause')
        batch_op.drop_column('resolution_work_s')
        batch_op.drop_column('resolution_s')
        batch_op.drop_column('first_response_work_s')
        batch_op.drop_column('first_response_s')
        batch_op.drop_column('fcr_until')
        batch_op.drop_column('resolved_at')
        batch_op.drop_column('confirmed_at')

    with op.batch_alter_table('case_clocks', schema=None) as batch_op:
        batch_op.drop_index('ix_case_clocks_name_state')

    op.drop_table('case_clocks')
