"""core: outside web mini-apps (registration, reviewed versions, residents' pairwise ids)

Revision ID: core_0008
Revises: core_0007
Create Date: 2026-12-02 09:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = 'core_0008'
down_revision = 'core_0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('webapp',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('client_secret_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('client_revoked', sa.Boolean(), nullable=False),
    sa.Column('live_version', sa.Integer(), nullable=True),
    sa.Column('rollout_percent', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['user_account.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('webapp_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('webapp_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('manifest', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('submitted', 'approved', 'rejected', 'published', 'retired', name='versionstatus'), nullable=False),
    sa.Column('review_reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('submitted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('reviewed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('published_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['webapp_id'], ['webapp.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('webapp_id', 'number')
    )
    with op.batch_alter_table('webapp_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webapp_version_webapp_id'), ['webapp_id'], unique=False)
    op.create_table('webapp_subject',
    sa.Column('webapp_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('pairwise_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('webapp_id', 'pairwise_id')
    )
    with op.batch_alter_table('webapp_subject', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webapp_subject_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('webapp_subject', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webapp_subject_user_id'))
    op.drop_table('webapp_subject')
    with op.batch_alter_table('webapp_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webapp_version_webapp_id'))
    op.drop_table('webapp_version')
    sa.Enum(name='versionstatus').drop(op.get_bind(), checkfirst=True)
    op.drop_table('webapp')
