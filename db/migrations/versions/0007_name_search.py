"""the search box's index: customer-name grams, the case-folded name, and an index on
the phone (0008 fills them for the cases already there)

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-24 23:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('case_name_grams',
    sa.Column('gram', sa.String(length=8), nullable=False),
    sa.Column('case_id', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_name_grams_case_id_cases')),
    sa.PrimaryKeyConstraint('gram', 'case_id', name=op.f('pk_case_name_grams'))
    )
    with op.batch_alter_table('case_name_grams', schema=None) as batch_op:
        batch_op.create_index('ix_case_name_grams_case', ['case_id'], unique=False)
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('customer_name_folded', sa.Text(), nullable=True))
        batch_op.create_index('ix_cases_phone', ['customer_phone'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_phone')
        batch_op.drop_column('customer_name_folded')
    with op.batch_alter_table('case_name_grams', schema=None) as batch_op:
        batch_op.drop_index('ix_case_name_grams_case')
    op.drop_table('case_name_grams')
