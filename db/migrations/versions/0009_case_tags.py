"""case_tags: free-text tags on a case, for the tag= filter

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 15:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'case_tags',
        sa.Column('case_id', sa.String(length=32), nullable=False),
        sa.Column('tag', sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'],
                                name=op.f('fk_case_tags_case_id_cases')),
        sa.PrimaryKeyConstraint('case_id', 'tag', name=op.f('pk_case_tags')),
    )
    op.create_index('ix_case_tags_tag', 'case_tags', ['tag'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_case_tags_tag', table_name='case_tags')
    op.drop_table('case_tags')
