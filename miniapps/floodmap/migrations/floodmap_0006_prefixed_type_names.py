"""floodmap: the station kind's enum type named with the mini-app's prefix (PostgreSQL keeps type names in one namespace)

Revision ID: floodmap_0006
Revises: floodmap_0005
Create Date: 2026-12-02 13:00:00
"""
from alembic import op

revision = 'floodmap_0006'
down_revision = 'floodmap_0005'
branch_labels = None
depends_on = None

RENAMED = [("stationkind", "floodmap_stationkind")]


def upgrade() -> None:
    # SQLite stores enums as VARCHAR without a named type: nothing to rename there.
    if op.get_bind().dialect.name == "postgresql":
        for old, new in RENAMED:
            op.execute(f'ALTER TYPE "{old}" RENAME TO "{new}"')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for old, new in RENAMED:
            op.execute(f'ALTER TYPE "{new}" RENAME TO "{old}"')
