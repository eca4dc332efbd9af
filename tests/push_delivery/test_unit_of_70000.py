"""A notice to a unit of 70,000 residents on PostgreSQL: accepted with a constant number of rows, found by
every one of them in their inbox, and planned for their devices in batches with bounded memory."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session, select

from core.app import create_app
from core.identity.models import User, utcnow
from core.identity.service import create_official, start_session
from push import inbox
from push.models import Notification, OutboxKind, OutboxStatus, PushOutbox
from push.planner import PLAN_BATCH, plan
from tests.conftest import TEST_SECRET, _truncate, base_settings

RESIDENTS = 70_000
DEVICES_EVERY = 2  # every second resident has a phone registered
UNIT = "phu-xuan"
SAMPLE_EVERY = 50  # residents whose inbox is read page by page (all 70,000 are counted set-wise)


@pytest.fixture
def big_unit(postgres_url: str) -> Iterator[TestClient]:
    """A host on PostgreSQL whose Phú Xuân has 70,000 residents (and 35,000 devices), written set-wise."""
    app = create_app(base_settings(database_url=postgres_url, push_worker_enabled=False))
    with app.state.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO user_account (kind, display_name, phone, home_unit_id, home_unit_since, notification_prefs,"
            " is_active, created_at) SELECT 'resident', 'Cư dân ' || n, '+8491' || lpad(n::text, 7, '0'), :unit,"
            " now() - interval '1 day', '{}', true, now() - interval '1 day' FROM generate_series(1, :n) AS n"),
            {"unit": UNIT, "n": RESIDENTS})
        connection.execute(text(
            "INSERT INTO device (user_id, token, platform, app_version, locale, created_at, last_seen_at, active)"
            " SELECT id, 'tok-70k-' || id || '-' || repeat('x', 40), 'android', '3.2.1', 'vi', now(), now(), true"
            " FROM user_account WHERE home_unit_id = :unit AND id % :every = 0"),
            {"unit": UNIT, "every": DEVICES_EVERY})
    try:
        with TestClient(app) as client:
            yield client
    finally:
        _truncate(postgres_url)


def _operator_headers(app) -> dict[str, str]:
    with Session(app.state.engine, expire_on_commit=False) as db:
        user = create_official(db, username="op.70k", display_name="op", password="Hue-2025-strong-pw",
                               memberships=[("operator", "hue")])
        pair = start_session(db, secret=TEST_SECRET, user=user, method="test", client=None, address=None)
    return {"Authorization": f"Bearer {pair.access_token}"}


def _counts(app) -> dict[str, int]:
    with app.state.engine.connect() as connection:
        return {t: connection.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("notification", "notification_audience", "inbox_item", "push_outbox")}


def test_a_notice_to_70000_residents_reaches_every_inbox_and_device(big_unit: TestClient) -> None:
    app = big_unit.app
    headers = _operator_headers(app)
    before = _counts(app)
    sent = big_unit.post("/api/notifications", headers=headers, json={
        "title": {"vi": "Lịch cắt nước", "en": "Water cut"}, "body": {"vi": "Sáng mai", "en": "Tomorrow morning"},
        "units": [UNIT]})
    assert sent.status_code == 202, sent.text
    notification_id = sent.json()["notification_id"]
    # Rows written do not depend on the 70,000: the notice, its audience, one planning job.
    after = _counts(app)
    assert {t: after[t] - before[t] for t in after} == {
        "notification": 1, "notification_audience": 1, "inbox_item": 0, "push_outbox": 1}

    # Every one of the 70,000 has it in their inbox: the status the sender reads counts them from the
    # audience rule (``inbox.readers``) ...
    status = big_unit.get(sent.json()["status_url"], headers=headers).json()
    assert status["reach"] == RESIDENTS and status["audiences"] == [f"unit:{UNIT}"]
    with Session(app.state.engine) as db:
        residents = list(db.exec(select(User.id).where(User.home_unit_id == UNIT).order_by(User.id)))
        assert len(residents) == RESIDENTS
        assert set(db.exec(inbox.readers(db, notification_id)).scalars()) == set(residents)
        # ... and the inbox's own read path agrees, for one resident in 50 across the whole unit,
        missing = [user_id for user_id in residents[::SAMPLE_EVERY]
                   if [(e.notification.id, e.read) for e in inbox.page(db, user_id, limit=1)[0]]
                   != [(notification_id, False)]]
        assert missing == []
    # ... and the API, for residents at both ends of the unit.
    for user_id in (residents[0], residents[-1]):
        with Session(app.state.engine, expire_on_commit=False) as db:
            pair = start_session(db, secret=TEST_SECRET, user=db.get(User, user_id), method="test", client=None,
                                 address=None)
        page = big_unit.get("/api/inbox", headers={"Authorization": f"Bearer {pair.access_token}"}).json()
        assert page["items"][0]["id"] == notification_id and page["unread"] == 1

    # The worker plans one push per device, at most 500 devices a row, with bounded memory.
    with Session(app.state.engine) as db:
        row = db.exec(select(PushOutbox).where(PushOutbox.notification_id == notification_id)).one()
        assert row.kind is OutboxKind.plan
        row.leased_by = "test-planner"
        db.add(row)
        db.commit()
        row_id, payload = row.id, dict(row.payload)
    tracemalloc.start()
    progress = plan(app.state.engine, row_id=row_id, notification_id=notification_id, payload=payload,
                    worker_id="test-planner", clock=utcnow)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert progress.devices == RESIDENTS // DEVICES_EVERY and progress.muted == progress.held == 0
    assert peak < 40 * 1024 * 1024, f"planning held {peak / 2**20:.0f} MiB of Python objects at its peak"
    with Session(app.state.engine) as db:
        rows = list(db.exec(select(PushOutbox).where(PushOutbox.notification_id == notification_id,
                                                     PushOutbox.kind == OutboxKind.devices)))
        planned = [d for r in rows for d in r.payload["devices"]]
        assert all(len(r.payload["devices"]) <= PLAN_BATCH and r.status is OutboxStatus.pending for r in rows)
        assert len(planned) == len(set(planned)) == RESIDENTS // DEVICES_EVERY
        assert db.get(Notification, notification_id).delivery["devices"] == RESIDENTS // DEVICES_EVERY
