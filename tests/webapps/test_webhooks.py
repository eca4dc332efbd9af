"""Durable signed webhooks, on both databases: a resident's account deletion reaches each mini-app they used
with their pairwise id, after the mini-app's backend was down and came back (the sample, stopped and restarted),
from an outbox row that a fresh host process delivers; backoff between attempts, and no row sent twice."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
from sqlmodel import Session, select

from core.db import make_engine
from core.identity.models import User, utcnow
from core.webapps import webhooks
from core.webapps.models import WebAppSubject, WebAppWebhook
from core.webapps.tokens import KeyRing
from tests.conftest import TEST_SECRET
from tests.webapps.conftest import register_sample
from tests.webapps.test_sample_browser import launch


def outbox(engine) -> list[WebAppWebhook]:
    """Every webhook row, oldest first."""
    with Session(engine) as db:
        return list(db.exec(select(WebAppWebhook).order_by(WebAppWebhook.id)))


def test_account_deletion_reaches_a_backend_that_was_down(live_url, people, sample, settings):
    register_sample(live_url, people.operator_token, "tree_care", sample.url.replace("localhost", "127.0.0.1"))
    launch(live_url, people, "youth_union")  # the resident used both mini-apps
    launch(live_url, people, "tree_care")
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as db:
            subjects = {s.webapp_id: s.pairwise_id for s in db.exec(select(WebAppSubject))}
        assert set(subjects) == {"youth_union", "tree_care"}
        sample.process.stop()  # the backend is down
        deleted = httpx.delete(f"{live_url}/api/me", headers={"Authorization": f"Bearer {people.resident_token}"},
                               timeout=30)
        assert deleted.status_code == 204, deleted.text
        for _ in range(100):  # the host tried at once, in the background, and failed
            rows = outbox(engine)
            if len(rows) == 2 and all(r.attempts == 1 and r.last_error for r in rows):
                break
            time.sleep(0.1)
        assert {(r.webapp_id, r.event, r.claims["sub"]) for r in rows} == {
            ("youth_union", "account.deleted", subjects["youth_union"]),
            ("tree_care", "account.deleted", subjects["tree_care"])}
        assert all(r.delivered_at is None and "Connect" in (r.last_error or "") for r in rows)
        with Session(engine) as db:
            assert db.get(User, people.resident_id) is None
            assert not list(db.exec(select(WebAppSubject)))  # the pairwise ids went with the account
        # Not yet due: the backoff holds the next attempt back.
        keys = KeyRing(TEST_SECRET, settings.webapp_key_generation)
        assert webhooks.deliver_due(engine, keys) == 0
        # The backend is back; a host process that knows nothing but the database delivers once due.
        sample.process.start()
        later = utcnow() + timedelta(minutes=2)
        assert webhooks.deliver_due(engine, keys, now=later) == 1
        assert webhooks.deliver_due(engine, keys, now=later + timedelta(hours=1)) == 0  # never twice
        received = httpx.get(f"{sample.url.replace('localhost', '127.0.0.1')}/hooks/received", timeout=10).json()
        # The sample verified each against the JWKS with its own audience: youth_union's reached it (tree_care's
        # audience is another mini-app, so the sample refused that one: it was still answered, with 401).
        assert [(e["event"], e["sub"]) for e in received] == [("account.deleted", subjects["youth_union"])]
        rows = {r.webapp_id: r for r in outbox(engine)}
        assert rows["youth_union"].delivered_at is not None and rows["youth_union"].attempts == 2
        assert rows["tree_care"].delivered_at is None and rows["tree_care"].last_error == "HTTP 401"
        assert rows["tree_care"].attempts == 3  # refused again an hour later, and still kept for the next try
    finally:
        engine.dispose()


def test_backoff_doubles_from_ten_seconds_to_an_hour():
    assert [webhooks.backoff(n).total_seconds() for n in (1, 2, 3, 9, 20)] == [10, 20, 40, 2560, 3600]
