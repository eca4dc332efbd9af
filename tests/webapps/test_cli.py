"""``superapp webapps``: register, refuse naming the field, review, publish, widen and roll back, on both databases."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select

from core.cli import main
from core.db import make_engine
from core.identity.models import AuditEvent
from core.webapps.models import WebApp
from tests.webapps.helpers import registration


@pytest.fixture
def run(database_url, monkeypatch, tmp_path):
    """Invoke ``superapp`` against the test database."""
    monkeypatch.setenv("SUPERAPP_DATABASE_URL", database_url)
    monkeypatch.setenv("SUPERAPP_VAR_DIR", str(tmp_path / "var"))

    def invoke(*args: str):
        return CliRunner().invoke(main, list(args))

    return invoke


def test_cli_lifecycle(run, database_url, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(registration(entry_url="https://elsewhere.example.com/app")))
    refused = run("webapps", "register", str(bad))
    assert refused.exit_code == 1 and "entry_url" in refused.output
    good = tmp_path / "good.json"
    good.write_text(json.dumps(registration()))
    registered = run("webapps", "register", str(good))
    assert registered.exit_code == 0, registered.output
    assert "client_secret=" in registered.output
    rejected = run("webapps", "review", "youth_union", "1", "--reject")
    assert rejected.exit_code == 1 and "reason" in rejected.output
    assert run("webapps", "review", "youth_union", "1", "--approve").exit_code == 0
    published = run("webapps", "publish", "youth_union", "1", "--percent", "20")
    assert published.exit_code == 0 and "20%" in published.output
    narrower = run("webapps", "rollout", "youth_union", "10")
    assert narrower.exit_code == 1 and "rollout_percent" in narrower.output
    assert run("webapps", "rollout", "youth_union", "50").exit_code == 0
    assert run("webapps", "revoke-client", "youth_union").exit_code == 0
    engine = make_engine(database_url)
    try:
        with Session(engine) as db:
            webapp = db.get(WebApp, "youth_union")
            assert webapp is not None and webapp.rollout_percent == 50 and webapp.client_revoked
            actions = {e.action for e in db.exec(select(AuditEvent).where(AuditEvent.address == "cli"))}
    finally:
        engine.dispose()
    assert {"webapp_registered", "webapp_version_approved", "webapp_version_published", "webapp_rollout_widened",
            "webapp_client_revoked"} <= actions
