"""teams: user_teams (a user in one or more teams), users.on_duty, and the case's
store and team as columns for the lists' filters and the ownership check

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 19:15:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'user_teams',
        sa.Column('user_name', sa.String(length=64), nullable=False),
        sa.Column('team', sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(['user_name'], ['users.name'],
                                name=op.f('fk_user_teams_user_name_users')),
        sa.PrimaryKeyConstraint('user_name', 'team', name=op.f('pk_user_teams')),
    )
    op.create_index('ix_user_teams_team', 'user_teams', ['team'], unique=False)
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('on_duty', sa.Boolean(), nullable=False,
                                   server_default='1'))
    with op.batch_alter_table('cases') as batch:
        batch.add_column(sa.Column('store', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('team', sa.String(length=40), nullable=True))
        batch.create_index('ix_cases_team_due', ['team', 'due_key', 'id'], unique=False)
        batch.create_index('ix_cases_store', ['store'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cases') as batch:
        batch.drop_index('ix_cases_store')
        batch.drop_index('ix_cases_team_due')
        batch.drop_column('team')
        batch.drop_column('store')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('on_duty')
    op.drop_index('ix_user_teams_team', table_name='user_teams')
    op.drop_table('user_teams')
