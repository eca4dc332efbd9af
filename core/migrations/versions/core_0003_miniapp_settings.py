"""core: mini-app settings (values and encrypted secrets)

Revision ID: core_0003
Revises: core_0002
Create Date: 2026-11-25 20:30:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = 'core_0003'
down_revision = 'core_0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('miniapp_settings',
    sa.Column('miniapp', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('values', sa.JSON(), nullable=False),
    sa.Column('secrets', sa.JSON(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['updated_by'], ['user_account.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('miniapp')
    )


def downgrade() -> None:
    op.drop_table('miniapp_settings')
