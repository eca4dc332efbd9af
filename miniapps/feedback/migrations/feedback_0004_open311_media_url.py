"""feedback: an Open311 client's posted media_url is kept and returned

Revision ID: feedback_0004
Revises: feedback_0003
Create Date: 2026-12-02 09:05:00
"""
import sqlalchemy as sa
from alembic import op

revision = 'feedback_0004'
down_revision = 'feedback_0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('feedback_report', sa.Column('media_url', sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('feedback_report', schema=None) as batch_op:
        batch_op.drop_column('media_url')
