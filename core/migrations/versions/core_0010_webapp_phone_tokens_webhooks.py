"""core: web mini-apps' one-time phone tokens and the durable webhook outbox

Revision ID: core_0010
Revises: core_0009
Create Date: 2026-12-02 12:20:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = 'core_0010'
down_revision = 'core_0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('webapp_phone_token',
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('webapp_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('used_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['webapp_id'], ['webapp.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash')
    )
    op.create_index(op.f('ix_webapp_phone_token_expires_at'), 'webapp_phone_token', ['expires_at'], unique=False)
    op.create_index(op.f('ix_webapp_phone_token_user_id'), 'webapp_phone_token', ['user_id'], unique=False)
    op.create_table('webapp_webhook',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('webapp_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('event', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('url', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('claims', sa.JSON(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('delivered_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['webapp_id'], ['webapp.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_webapp_webhook_delivered_at'), 'webapp_webhook', ['delivered_at'], unique=False)
    op.create_index(op.f('ix_webapp_webhook_next_attempt_at'), 'webapp_webhook', ['next_attempt_at'], unique=False)
    op.create_index(op.f('ix_webapp_webhook_webapp_id'), 'webapp_webhook', ['webapp_id'], unique=False)


def downgrade() -> None:
    op.drop_table('webapp_webhook')
    op.drop_table('webapp_phone_token')
