"""`superapp db revision ID -m MESSAGE` drafts a mini-app's migration in its own folder and branch.

Each test runs the command as a developer would, in a subprocess, against a database created for it
(SQLite and PostgreSQL) that holds only core and the fixture mini-apps: the shared test databases
carry the built-ins' revisions, which these hosts do not load.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.db import make_engine
from tests.conftest import PG_URL, require
from tests.plugins.sample import manifest

ROOT = Path(__file__).resolve().parents[2]
CORE_VERSIONS = ROOT / "core" / "migrations" / "versions"
FIRST_MIGRATION = '''
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "{id}_0001"
down_revision = None
branch_labels = ("{id}",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table("{id}_item", sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("title", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
                    sa.PrimaryKeyConstraint("id"))


def downgrade() -> None:
    op.drop_table("{id}_item")
'''
HOOKS = '''
from pathlib import Path

from plugins import hookimpl

from .models import MODELS

HERE = Path(__file__).parent
MANIFEST = {manifest!r}


@hookimpl
def superapp_manifest():
    import json
    return json.loads(MANIFEST)


@hookimpl
def superapp_register_models(register):
    register(*MODELS{migrations})
'''
MODELS = '''
from sqlmodel import Field, SQLModel


class Item(SQLModel, table=True):
    __tablename__ = "{id}_item"
    id: int | None = Field(default=None, primary_key=True)
    title: str
{extra}

MODELS = [Item]
'''


def _miniapp(root: Path, miniapp_id: str, *, first_migration: bool = True, migrations: bool = True) -> Path:
    """A built-in of the package ``draftapps`` with one table; returns its folder."""
    package = root / "draftapps" / miniapp_id
    package.mkdir(parents=True)
    (root / "draftapps" / "__init__.py").write_text("")
    if migrations:
        (package / "migrations").mkdir()
        if first_migration:
            (package / "migrations" / f"{miniapp_id}_0001_items.py").write_text(FIRST_MIGRATION.format(id=miniapp_id))
    data = json.dumps(manifest(id=miniapp_id, min_host_version="1.2.0"))
    (package / "__init__.py").write_text(HOOKS.format(
        manifest=data, migrations=', migrations=HERE / "migrations"' if migrations else ""))
    _models(package, miniapp_id)
    return package


def _models(package: Path, miniapp_id: str, extra: str = "") -> None:
    (package / "models.py").write_text(MODELS.format(id=miniapp_id, extra=textwrap.indent(extra, "    ")))


def _superapp(root: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(ROOT)]), "PYTHONDONTWRITEBYTECODE": "1",
           "SUPERAPP_BUILTIN_MINIAPPS_PACKAGE": "draftapps", "SUPERAPP_LOAD_ENTRY_POINTS": "false",
           "SUPERAPP_DATABASE_URL": database_url, "SUPERAPP_LOG_JSON": "false", "SUPERAPP_VAR_DIR": str(root / "var")}
    code = "import sys; from core.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=root, capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it, on SQLite or on the PostgreSQL server of SUPERAPP_TEST_DATABASE_URL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'draft.db'}"
        return
    require(bool(PG_URL), "PostgreSQL (SUPERAPP_TEST_DATABASE_URL)")
    assert PG_URL
    server = make_url(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"superapp_draft_{uuid.uuid4().hex[:10]}"
    maintenance = make_engine(server.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    with maintenance.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False).replace(
            "postgresql+psycopg://", "postgresql://", 1)
    finally:
        with maintenance.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        maintenance.dispose()


def _core_versions() -> set[str]:
    return {path.name for path in CORE_VERSIONS.iterdir()}


def test_a_new_column_is_drafted_in_the_miniapps_own_folder(tmp_path: Path, empty_database_url: str) -> None:
    package = _miniapp(tmp_path, "drafty")
    upgraded = _superapp(tmp_path, empty_database_url, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    core_before = _core_versions()
    _models(package, "drafty", extra="colour: str = Field(default='', max_length=20)")

    drafted = _superapp(tmp_path, empty_database_url, "db", "revision", "drafty", "-m", "item colour")

    assert drafted.returncode == 0, drafted.stderr
    draft = package / "migrations" / "drafty_0002_item_colour.py"
    assert f"drafted {draft}" in drafted.stdout and "(1 operation(s))" in drafted.stdout
    body = draft.read_text()
    # op.add_column on PostgreSQL, batch_op.add_column (SQLite's batch mode) on SQLite: both run on either.
    assert re.search(r"add_column\((?:'drafty_item', )?sa\.Column\('colour', sqlmodel\.sql\.sqltypes\.AutoString\("
                     r"length=20\)", body), body
    assert re.search(r"drop_column\((?:'drafty_item', )?'colour'\)", body), body
    assert "revision = 'drafty_0002'" in body and "down_revision = 'drafty_0001'" in body
    assert "branch_labels = None" in body
    assert sorted(p.name for p in (package / "migrations").glob("*.py")) == [
        "drafty_0001_items.py", "drafty_0002_item_colour.py"]
    assert _core_versions() == core_before, "the draft landed in core's folder"
    # The draft is a working migration: applied, the models and the database agree.
    assert _superapp(tmp_path, empty_database_url, "db", "upgrade").returncode == 0
    checked = _superapp(tmp_path, empty_database_url, "db", "check")
    assert checked.returncode == 0 and "models and migrations agree" in checked.stdout, checked.stdout


def test_the_first_revision_starts_the_miniapps_branch(tmp_path: Path, empty_database_url: str) -> None:
    package = _miniapp(tmp_path, "newbie", first_migration=False)
    assert _superapp(tmp_path, empty_database_url, "db", "upgrade").returncode == 0

    drafted = _superapp(tmp_path, empty_database_url, "db", "revision", "newbie", "-m", "items")

    assert drafted.returncode == 0, drafted.stderr
    body = (package / "migrations" / "newbie_0001_items.py").read_text()
    assert "op.create_table('newbie_item'" in body
    assert "branch_labels = ('newbie',)" in body and "depends_on = 'core_0001'" in body
    assert "down_revision = None" in body
    assert _superapp(tmp_path, empty_database_url, "db", "upgrade").returncode == 0
    assert _superapp(tmp_path, empty_database_url, "db", "check").returncode == 0


def test_only_the_named_miniapps_tables_are_drafted(tmp_path: Path, empty_database_url: str) -> None:
    """Another mini-app's unmigrated column stays out of this one's draft, and out of its folder."""
    mine = _miniapp(tmp_path, "mine")
    theirs = _miniapp(tmp_path, "theirs")
    assert _superapp(tmp_path, empty_database_url, "db", "upgrade").returncode == 0
    _models(theirs, "theirs", extra="size: int = 0")

    unchanged = _superapp(tmp_path, empty_database_url, "db", "revision", "mine", "-m", "nothing yet")

    assert unchanged.returncode == 0, unchanged.stderr
    assert "mini-app 'mine': its models and the database agree; nothing drafted" in unchanged.stdout
    assert [p.name for p in (mine / "migrations").glob("*.py")] == ["mine_0001_items.py"]

    blank = _superapp(tmp_path, empty_database_url, "db", "revision", "mine", "-m", "data fix", "--empty")
    assert blank.returncode == 0, blank.stderr
    body = (mine / "migrations" / "mine_0002_data_fix.py").read_text()
    assert "size" not in body and "theirs" not in body


def test_a_database_behind_head_is_refused(tmp_path: Path) -> None:
    _miniapp(tmp_path, "drafty")
    result = _superapp(tmp_path, f"sqlite:///{tmp_path / 'behind.db'}", "db", "revision", "drafty", "-m", "x")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: mini-app 'drafty': the database is not at head (pending: ")
    assert "run `superapp db upgrade` first" in line


@pytest.mark.parametrize(("miniapp_id", "expected"), [
    ("weather", "error: no mini-app 'weather' is loaded (loaded: bare, drafty)"),
    ("bare", "error: mini-app 'bare' has no migrations: register a folder with register(*models, "
             "migrations=HERE / 'migrations') in superapp_register_models"),
])
def test_an_unknown_miniapp_or_one_without_migrations_is_one_line(tmp_path: Path, miniapp_id: str,
                                                                   expected: str) -> None:
    _miniapp(tmp_path, "drafty")
    _miniapp(tmp_path, "bare", migrations=False)
    result = _superapp(tmp_path, f"sqlite:///{tmp_path / 'd.db'}", "db", "revision", miniapp_id, "-m", "x")
    assert result.returncode == 2
    assert result.stderr.strip() == expected
    assert list((tmp_path / "draftapps" / "drafty" / "migrations").glob("*.py")) == [
        tmp_path / "draftapps" / "drafty" / "migrations" / "drafty_0001_items.py"]
