"""interaction: the knowledge base's version token and an index for browsing the newest entries

Revision ID: interaction_0002
Revises: interaction_0001
Create Date: 2026-12-02
"""
import secrets

import sqlalchemy as sa
from alembic import op

revision = "interaction_0002"
down_revision = "interaction_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('interaction_search_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    # The row exists from the start, so kept searches work before the first write to the base.
    op.execute(sa.text("INSERT INTO interaction_search_version (id, version) VALUES (1, :token)")
               .bindparams(token=secrets.randbits(62)))
    op.create_index('ix_interaction_search_entry_updated', 'interaction_search_entry', ['updated_at', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_interaction_search_entry_updated', table_name='interaction_search_entry')
    op.drop_table('interaction_search_version')
