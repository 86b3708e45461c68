"""triage suggestions on cases, and handlers' decisions as training pairs

Revision ID: 0005
Revises: 0006
Create Date: 2026-11-24 21:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
# 0004 is being added on another branch; the chain is joined when both are merged.
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('triage', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('escalation_risk', sa.Boolean(), nullable=False, server_default=sa.false()))

    op.create_table('triage_feedback',
    sa.Column('case_id', sa.String(length=32), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=True),
    sa.Column('root_cause', sa.String(length=32), nullable=True),
    sa.Column('suggested_kind', sa.String(length=16), nullable=True),
    sa.Column('suggested_root_cause', sa.String(length=32), nullable=True),
    sa.Column('model_version', sa.String(length=40), nullable=True),
    sa.Column('decided_by', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_triage_feedback_case_id_cases')),
    sa.PrimaryKeyConstraint('case_id', name=op.f('pk_triage_feedback'))
    )
    with op.batch_alter_table('triage_feedback', schema=None) as batch_op:
        batch_op.create_index('ix_triage_feedback_updated', ['updated_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('triage_feedback', schema=None) as batch_op:
        batch_op.drop_index('ix_triage_feedback_updated')
    op.drop_table('triage_feedback')

    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_column('escalation_risk')
        batch_op.drop_column('triage')
