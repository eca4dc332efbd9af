"""core: phone and location one-time tokens of web mini-apps share one table with a kind

Revision ID: core_0011
Revises: core_0010
Create Date: 2026-12-02 13:35:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = 'core_0011'
down_revision = 'core_0010'
branch_labels = None
depends_on = None


def _token_table(name: str, *extra: sa.Column) -> None:
    op.create_table(name,
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    *extra,
    sa.Column('webapp_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('used_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['webapp_id'], ['webapp.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash')
    )
    op.create_index(op.f(f'ix_{name}_expires_at'), name, ['expires_at'], unique=False)
    op.create_index(op.f(f'ix_{name}_user_id'), name, ['user_id'], unique=False)


def upgrade() -> None:
    _token_table('webapp_one_time_token',
                 sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
                 sa.Column('payload', sa.JSON(), nullable=True))
    # Phone tokens issued in the last two minutes stay exchangeable across the upgrade.
    op.execute("INSERT INTO webapp_one_time_token (token_hash, kind, webapp_id, user_id, expires_at, used_at) "
               "SELECT token_hash, 'phone', webapp_id, user_id, expires_at, used_at FROM webapp_phone_token")
    op.drop_table('webapp_phone_token')


def downgrade() -> None:
    _token_table('webapp_phone_token')
    # Location tokens have no place in the older table; they expire within two minutes anyway.
    op.execute("INSERT INTO webapp_phone_token (token_hash, webapp_id, user_id, expires_at, used_at) "
               "SELECT token_hash, webapp_id, user_id, expires_at, used_at FROM webapp_one_time_token "
               "WHERE kind = 'phone'")
    op.drop_table('webapp_one_time_token')
