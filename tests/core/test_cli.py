"""The ``superapp`` console script, run as a user would run it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SUPERAPP = Path(sys.executable).with_name("superapp")


def run(*args: str, env: dict[str, str], input: str | None = None) -> subprocess.CompletedProcess:
    """Run the installed console script with ``env`` added to the environment."""
    full = {**os.environ, "SUPERAPP_LOG_JSON": "false", **env}
    return subprocess.run([str(SUPERAPP), *args], env=full, capture_output=True, text=True, timeout=120, input=input)


@pytest.fixture
def fresh_db(tmp_path) -> dict[str, str]:
    return {"SUPERAPP_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "SUPERAPP_ENV": "dev"}


def test_upgrade_seed_twice_and_check(fresh_db) -> None:
    upgraded = run("db", "upgrade", env=fresh_db)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "migrating core, " in upgraded.stdout and "festival" in upgraded.stdout
    # Hue's reference units come with the schema (production needs them too); seeding finds them there.
    assert "(51 reference units added)" in upgraded.stdout
    first = run("seed", "demo", env=fresh_db)
    assert first.returncode == 0 and "org units: 0 added" in first.stdout
    assert "demo officials: 6 added" in first.stdout
    assert "festival: 3 programme events added" in first.stdout
    again = run("seed", "demo", env=fresh_db)
    assert again.returncode == 0 and "org units: 0 added" in again.stdout
    assert "demo officials: 0 added" in again.stdout and "demo residents: 0 added" in again.stdout
    check = run("db", "check", env=fresh_db)
    assert check.returncode == 0 and "agree" in check.stdout


def test_miniapps_list_shows_source(fresh_db) -> None:
    listed = run("miniapps", "list", env=fresh_db)
    assert listed.returncode == 0
    assert any(line.split()[:2] == ["festival", "0.3.0"] and "superapp-festival 0.3.0" in line
               for line in listed.stdout.splitlines())


def test_bad_setting_is_one_clear_line(fresh_db) -> None:
    result = run("miniapps", "list", env={**fresh_db, "SUPERAPP_LOCALE": "fr"})
    assert result.returncode == 2
    assert result.stderr.strip() == "error: invalid configuration: SUPERAPP_LOCALE: Input should be 'vi' or 'en'"


def test_allowlist_naming_a_missing_miniapp(fresh_db) -> None:
    result = run("miniapps", "list", env={**fresh_db, "SUPERAPP_MINIAPPS": "festival,weather"})
    assert result.returncode == 2 and "not installed: weather" in result.stderr


def test_unreachable_database_is_named(fresh_db) -> None:
    result = run("db", "upgrade", env={**fresh_db, "SUPERAPP_DATABASE_URL": "postgresql://hue:secret@127.0.0.1:1/hue"})
    assert result.returncode == 2
    assert "cannot reach the database postgresql+psycopg://hue:***@127.0.0.1:1/hue" in result.stderr
    assert "secret" not in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_an_unmigrated_database(fresh_db) -> None:
    result = run("serve", "--port", "8799", env=fresh_db)
    assert result.returncode == 2 and "run `superapp db upgrade`" in result.stderr


def test_serve_refuses_a_model_its_migrations_lack_naming_the_miniapp(fresh_db, tmp_path) -> None:
    import sqlite3

    assert run("db", "upgrade", env=fresh_db).returncode == 0
    with sqlite3.connect(tmp_path / "cli.db") as connection:
        connection.execute("ALTER TABLE festival_event DROP COLUMN venue")
    result = run("serve", "--port", "8799", env=fresh_db)
    assert result.returncode == 2
    assert "mini-app 'festival': table 'festival_event' column 'venue'" in result.stderr


def test_serve_refuses_several_workers_without_redis(fresh_db) -> None:
    result = run("serve", "--workers", "2", env={**fresh_db, "SUPERAPP_REDIS_URL": ""})
    assert result.returncode == 2 and "SUPERAPP_REDIS_URL" in result.stderr


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory) -> Path:
    """One database upgraded and seeded by the commands, copied by each test that starts from it (each
    upgrade and seed is a process start and a full migration: seconds, not worth paying per test)."""
    path = tmp_path_factory.mktemp("cli") / "seeded.db"
    env = {"SUPERAPP_DATABASE_URL": f"sqlite:///{path}", "SUPERAPP_ENV": "dev"}
    assert run("db", "upgrade", env=env).returncode == 0
    assert run("seed", "demo", env=env).returncode == 0
    return path


@pytest.fixture
def seeded(seeded_template: Path, tmp_path: Path) -> dict[str, str]:
    """A copy of the upgraded and seeded database, as ``fresh_db``'s environment."""
    path = tmp_path / "cli.db"
    shutil.copy(seeded_template, path)
    return {"SUPERAPP_DATABASE_URL": f"sqlite:///{path}", "SUPERAPP_ENV": "dev"}


def test_create_official_reads_password_from_stdin_and_token_works(seeded) -> None:
    env = seeded
    created = run("users", "create-official", "--username", "px.le", "--name", "Lê Văn C", "--role",
                  "commune_official", "--unit", "phu-xuan", env=env, input="Hue-2025-strong-pw\n")
    assert created.returncode == 0, created.stderr
    assert "created official px.le" in created.stdout
    listed = run("users", "list", env=env)
    assert any("px.le" in line and "commune_official@phu-xuan" in line for line in listed.stdout.splitlines())
    token = run("users", "token", "px.le", env=env).stdout.strip()
    from core.identity.tokens import read_access_token

    # signed with the secret the command ran with (the test session's, tests/conftest.py)
    assert read_access_token(token, secret=os.environ["SUPERAPP_SECRET_KEY"]).user_id > 0


@pytest.mark.parametrize(
    ("args", "password", "message"),
    [
        (["--role", "commune_official", "--unit", "atlantis"], "Hue-2025-strong-pw", "unit: unknown unit 'atlantis'"),
        (["--role", "mayor", "--unit", "phu-xuan"], "Hue-2025-strong-pw", "role: unknown role 'mayor'"),
        (["--role", "department_official", "--unit", "phu-xuan"], "Hue-2025-strong-pw",
         "role department_official is held in a department"),
        (["--role", "commune_official", "--unit", "phu-xuan"], "short", "password: password must be at least 12"),
    ],
)
def test_create_official_errors_are_clear(seeded, args, password, message) -> None:
    env = seeded
    result = run("users", "create-official", "--username", "px.bad", "--name", "X", *args, env=env,
                 input=password + "\n")
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_token_for_unknown_user(seeded) -> None:
    result = run("users", "token", "nobody", env=seeded)
    assert result.returncode == 2 and "no official with username 'nobody'" in result.stderr


def test_demo_seed_refused_in_production(fresh_db) -> None:
    env = {**fresh_db, "SUPERAPP_ENV": "production", "SUPERAPP_SECRET_KEY": "s" * 40}
    assert run("db", "upgrade", env=env).returncode == 0
    result = run("seed", "demo", env=env)
    assert result.returncode == 2 and "refusing to load demo accounts" in result.stderr
