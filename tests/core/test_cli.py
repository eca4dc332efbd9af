"""The ``superapp`` console script, run as a user would run it."""

import os
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
    assert "migrating core, festival" in upgraded.stdout
    first = run("seed", "demo", env=fresh_db)
    assert first.returncode == 0 and "org units: 51 added" in first.stdout
    again = run("seed", "demo", env=fresh_db)
    assert again.returncode == 0 and "org units: 0 added" in again.stdout
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


def test_serve_refuses_several_workers_without_redis(fresh_db) -> None:
    result = run("serve", "--workers", "2", env={**fresh_db, "SUPERAPP_REDIS_URL": ""})
    assert result.returncode == 2 and "SUPERAPP_REDIS_URL" in result.stderr
