"""`superapp miniapps check` stops each mistake of the issue with one line naming the mini-app and the culprit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.plugins.sample import manifest

ROOT = Path(__file__).resolve().parents[2]
MIGRATION = '''
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


def _miniapp(root: Path, miniapp_id: str, *, hooks: str = "", manifest_changes: dict | None = None,
             model_extra: str = "") -> None:
    package = root / "checkapps" / miniapp_id
    (package / "migrations").mkdir(parents=True)
    (root / "checkapps" / "__init__.py").write_text("")
    (package / "migrations" / f"{miniapp_id}_0001_items.py").write_text(MIGRATION.format(id=miniapp_id))
    data = manifest(id=miniapp_id, min_host_version="1.2.0", **(manifest_changes or {}))
    (package / "__init__.py").write_text(textwrap.dedent(f'''
        from pathlib import Path

        from fastapi import APIRouter
        from sqlmodel import Field, SQLModel

        from plugins import hookimpl, require_permission

        HERE = Path(__file__).parent
        MANIFEST = {json.dumps(data)!r}


        class Item(SQLModel, table=True):
            __tablename__ = "{miniapp_id}_item"
            id: int | None = Field(default=None, primary_key=True)
            title: str
        {textwrap.indent(model_extra, "    ")}

        api = APIRouter()


        @api.get("/items", operation_id="list_items")
        def list_items() -> list:
            return []


        def superapp_manifest():
            import json
            return json.loads(MANIFEST)


        def superapp_register_models(register):
            register(Item, migrations=HERE / "migrations")


        def superapp_register_routes(register):
            register(api=api)
    ''') + textwrap.dedent(hooks))


def _check(root: Path, miniapp_id: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(ROOT)]),
           "SUPERAPP_BUILTIN_MINIAPPS_PACKAGE": "checkapps", "SUPERAPP_LOAD_ENTRY_POINTS": "false",
           "SUPERAPP_ENV": "test", "SUPERAPP_SECRET_KEY": "check-test-secret-0123456789abcdef0123",
           "SUPERAPP_VAR_DIR": str(root / "var")}
    env.pop("SUPERAPP_DATABASE_URL", None)
    code = "import sys; from core.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, "miniapps", "check", miniapp_id], cwd=root,
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("check")
    _miniapp(root, "tidy")
    _miniapp(root, "misspelt", hooks='''
        def superapp_register_route(register):
            register(api=api)
    ''')
    _miniapp(root, "coerced", manifest_changes={"order": "40", "public": "yes"})
    _miniapp(root, "drifty", model_extra="colour: str = ''")
    _miniapp(root, "enumtype", model_extra="kind: str = Field(default='a', sa_type=__import__('sqlalchemy').Enum('a', 'b', name='kind'))")
    _miniapp(root, "undeclared", hooks='''
        @api.post("/items", operation_id="add_item", dependencies=[require_permission("undeclared.items.add")])
        def add_item() -> dict:
            return {}
    ''')
    _miniapp(root, "prefixed", hooks='''
        def superapp_register_routes(register):
            register(api=APIRouter(prefix="/undeclared"))
    ''')
    return root


def test_a_sound_miniapp_passes(apps: Path) -> None:
    result = _check(apps, "tidy")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok: tidy"


@pytest.mark.parametrize(("miniapp_id", "expected"), [
    ("misspelt", "mini-app 'misspelt': unknown hook 'superapp_register_route'"),
    # no coercion, in the check and at start-up alike: serve refuses these too
    ("coerced", "mini-app 'coerced': invalid manifest: "),
    ("coerced", "field 'order': Input should be a valid integer"),
    ("coerced", "field 'public': Input should be a valid boolean"),
    ("drifty", "mini-app 'drifty': table 'drifty_item' column 'colour' is in the model but no migration adds it"),
    ("enumtype", "mini-app 'enumtype': table 'enumtype_item' column 'kind': database type 'kind' must be named "
                 "with the prefix 'enumtype_'"),
    ("undeclared", "mini-app 'undeclared': route(s) check undeclared permission(s) ['undeclared.items.add']"),
    ("prefixed", "mini-app 'prefixed': register(api=...): leave the router's prefix empty"),
])
def test_each_mistake_is_one_line_naming_the_miniapp(apps: Path, miniapp_id: str, expected: str) -> None:
    result = _check(apps, miniapp_id)
    assert result.returncode in (1, 2), result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert any(expected in line for line in lines), result.stderr


def test_a_misspelt_hook_gets_a_suggestion(apps: Path) -> None:
    assert "did you mean 'superapp_register_routes'?" in _check(apps, "misspelt").stderr
