"""floodmap: CAP msgType and references, so a station's escalation and its end update the first alert

Revision ID: floodmap_0005
Revises: floodmap_0004
Create Date: 2026-12-02 09:05:00
"""
import sqlalchemy as sa
from alembic import op

revision = 'floodmap_0005'
down_revision = 'floodmap_0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('floodmap_warning', sa.Column('msg_type', sa.String(length=10), nullable=False,
                                                server_default='Alert'))
    op.add_column('floodmap_warning', sa.Column('cap_references', sa.String(length=4000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('floodmap_warning', schema=None) as batch_op:
        batch_op.drop_column('cap_references')
        batch_op.drop_column('msg_type')
