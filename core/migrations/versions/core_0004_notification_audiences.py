"""core: notifications stored once and read per person (audiences, read marks, push planning)

Revision ID: core_0004
Revises: core_0003
Create Date: 2026-12-02 05:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = 'core_0004'
down_revision = 'core_0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # The outbox learns two kinds of row: planning a notice's push, and sending to device ids.
        op.execute("ALTER TYPE outboxkind ADD VALUE IF NOT EXISTS 'plan'")
        op.execute("ALTER TYPE outboxkind ADD VALUE IF NOT EXISTS 'devices'")
    op.create_table('notification_audience',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('notification_id', sa.Integer(), nullable=False),
    sa.Column('audience', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['notification_id'], ['notification.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('notification_audience', schema=None) as batch_op:
        batch_op.create_index('ix_notification_audience_audience_id', ['audience', 'notification_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_audience_notification_id'), ['notification_id'],
                              unique=False)
    op.create_table('inbox_state',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('read_through', sa.Integer(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id')
    )
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivery', sa.JSON(), nullable=False, server_default='{}'))
    with op.batch_alter_table('inbox_item', schema=None) as batch_op:
        batch_op.add_column(sa.Column('personal', sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('home_unit_since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        # Residents by unit: the push planner and the audience checks read the units' residents.
        batch_op.create_index('ix_user_account_home_unit_id', ['home_unit_id'], unique=False)
    # Followers of a unit (the primary key leads with user_id; push planning asks by unit).
    with op.batch_alter_table('unit_follow', schema=None) as batch_op:
        batch_op.create_index('ix_unit_follow_unit_id', ['unit_id'], unique=False)


def downgrade() -> None:
    # PostgreSQL cannot drop enum values; 'plan' and 'devices' stay in outboxkind, unused.
    with op.batch_alter_table('unit_follow', schema=None) as batch_op:
        batch_op.drop_index('ix_unit_follow_unit_id')
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_index('ix_user_account_home_unit_id')
        batch_op.drop_column('home_unit_since')
    with op.batch_alter_table('inbox_item', schema=None) as batch_op:
        batch_op.drop_column('personal')
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_column('delivery')
    op.drop_table('inbox_state')
    with op.batch_alter_table('notification_audience', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_audience_notification_id'))
        batch_op.drop_index('ix_notification_audience_audience_id')
    op.drop_table('notification_audience')
