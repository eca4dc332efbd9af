"""Retention: old rows go and recent ones stay, in bounded batches, on SQLite and PostgreSQL; bad settings stop start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, insert, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from config import SettingsError, load_settings
from core.db import make_engine
from core.identity.models import (
    AuditEvent,
    AuthSession,
    DevSignInCode,
    RefreshToken,
    User,
    UserKind,
    utcnow,
)
from core.retention import JOB_ID, purge, retention_job, scheduled_jobs
from core.scheduler import JobRun, run_due
from plugins.context import HostContext
from push.models import (
    InboxItem,
    Notification,
    NotificationAudience,
    OutboxKind,
    OutboxStatus,
    PushOutbox,
)
from tests.conftest import TEST_SECRET, base_settings

NOW = utcnow()
SUPERAPP = Path(sys.executable).with_name("superapp")


def days_ago(days: float) -> datetime:
    """A moment ``days`` before the test's now."""
    return NOW - timedelta(days=days)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on SQLite and on PostgreSQL (each test runs once for each)."""
    engine = make_engine(base_settings(database_url=database_url).sqlalchemy_url)
    yield engine
    engine.dispose()


def count(engine: Engine, model: type, *where: object) -> int:
    """Rows of ``model`` matching ``where``."""
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def resident(db: Session) -> int:
    """A new resident's id."""
    user = User(kind=UserKind.resident, display_name="SYNTHETIC Cư dân")
    db.add(user)
    db.flush()
    assert user.id is not None
    return user.id


def notification(db: Session, created_at: datetime) -> int:
    """A notification created at ``created_at``; returns its id."""
    note = Notification(miniapp="core", topic="announcements", title_vi="Thông báo", title_en="Notice",
                        body_vi="SYNTHETIC", body_en="SYNTHETIC", created_at=created_at)
    db.add(note)
    db.flush()
    assert note.id is not None
    return note.id


def test_old_rows_go_and_recent_rows_stay(engine: Engine) -> None:
    settings = base_settings()  # defaults: inbox 180 d, notifications 365, outbox 14, audit 730, sessions 30, runs 30
    with Session(engine) as db:
        user = resident(db)
        recent_note, old_note = notification(db, days_ago(10)), notification(db, days_ago(400))
        older_personal = notification(db, days_ago(200))
        db.add_all([
            InboxItem(user_id=user, notification_id=older_personal, created_at=days_ago(200)),  # goes
            InboxItem(user_id=user, notification_id=recent_note, created_at=days_ago(10)),  # stays
            # A read mark on an old-enough broadcast stays while the broadcast does...
            InboxItem(user_id=resident(db), notification_id=recent_note, created_at=days_ago(200), personal=False),
            # ...and goes with it, like its audience and its outbox rows (whatever their status).
            InboxItem(user_id=user, notification_id=old_note, created_at=days_ago(400), personal=False),
            NotificationAudience(notification_id=old_note, audience="unit:phu-xuan", created_at=days_ago(400)),
            NotificationAudience(notification_id=recent_note, audience="unit:phu-xuan", created_at=days_ago(10)),
            PushOutbox(kind=OutboxKind.topic, notification_id=old_note, status=OutboxStatus.pending,
                       created_at=days_ago(400)),
            PushOutbox(kind=OutboxKind.tokens, notification_id=recent_note, status=OutboxStatus.sent,
                       created_at=days_ago(20)),  # goes
            PushOutbox(kind=OutboxKind.tokens, notification_id=recent_note, status=OutboxStatus.dead,
                       created_at=days_ago(20)),  # goes
            PushOutbox(kind=OutboxKind.tokens, notification_id=recent_note, status=OutboxStatus.pending,
                       created_at=days_ago(20)),  # stays: never delivered
            PushOutbox(kind=OutboxKind.tokens, notification_id=recent_note, status=OutboxStatus.sent,
                       created_at=days_ago(2)),  # stays
            AuditEvent(action="sign_in", at=days_ago(800)),  # goes
            AuditEvent(action="sign_in", at=days_ago(700)),  # stays: audit is kept two years
            AuthSession(id="revoked-long-ago", user_id=user, sign_in_method="test", created_at=days_ago(90),
                        revoked_at=days_ago(40)),  # goes, with its token
            AuthSession(id="lapsed", user_id=user, sign_in_method="test", created_at=days_ago(90)),  # goes
            AuthSession(id="live", user_id=user, sign_in_method="test", created_at=days_ago(90)),  # stays
            AuthSession(id="revoked-lately", user_id=user, sign_in_method="test", created_at=days_ago(90),
                        revoked_at=days_ago(5)),  # stays
            DevSignInCode(phone="+84900000001", code_hash="x", expires_at=days_ago(40)),  # goes
            DevSignInCode(phone="+84900000002", code_hash="x", expires_at=days_ago(0.001)),  # stays
            JobRun(job_id="tests.daily", period_start=days_ago(60), worker="w", started_at=days_ago(60),
                   finished_at=days_ago(60), outcome="ok"),  # goes
            JobRun(job_id="tests.daily", period_start=days_ago(59), worker="w", started_at=days_ago(59),
                   finished_at=days_ago(59), outcome="ok"),  # goes
            JobRun(job_id="tests.daily", period_start=days_ago(1), worker="w", started_at=days_ago(1),
                   finished_at=days_ago(1), outcome="ok"),  # stays
            # The latest run of a job holds its period's claim: it stays however old.
            JobRun(job_id="tests.quarterly", period_start=days_ago(80), worker="w", started_at=days_ago(80),
                   finished_at=days_ago(80), outcome="ok"),
        ])
        db.flush()
        db.add_all([
            RefreshToken(session_id="revoked-long-ago", token_hash="a" * 64, created_at=days_ago(45),
                         expires_at=days_ago(-15)),
            RefreshToken(session_id="lapsed", token_hash="b" * 64, created_at=days_ago(90), expires_at=days_ago(60)),
            RefreshToken(session_id="live", token_hash="c" * 64, created_at=days_ago(90), expires_at=days_ago(60),
                         used_at=days_ago(89)),  # goes: expired long ago, though its session lives on
            RefreshToken(session_id="live", token_hash="d" * 64, created_at=days_ago(1), expires_at=days_ago(-29)),
            RefreshToken(session_id="revoked-lately", token_hash="e" * 64, created_at=days_ago(6),
                         expires_at=days_ago(-24)),
        ])
        db.commit()

    outcomes = {o.rule: o for o in purge(engine, settings, now=NOW)}

    assert {rule: o.rows for rule, o in outcomes.items()} == {
        "inbox": 1, "push outbox": 2, "notifications": 1, "audit": 1, "refresh tokens": 2, "sessions": 2,
        "sign-in codes": 1, "job runs": 2, "web mini-app usage": 0,
        "web mini-app one-time tokens": 0}
    assert outcomes["notifications"].dependents == {"notification_audience": 1, "inbox_item": 1, "push_outbox": 1}
    assert outcomes["sessions"].dependents == {"refresh_token": 1}
    # The personal notice's notification (200 days) stays: notifications are kept 365 days.
    assert count(engine, Notification) == 2 and count(engine, NotificationAudience) == 1
    assert count(engine, InboxItem, InboxItem.notification_id == recent_note) == 2
    assert count(engine, PushOutbox) == 2 and count(engine, PushOutbox, PushOutbox.status == OutboxStatus.pending) == 1
    assert count(engine, AuditEvent) == 1
    with Session(engine) as db:
        assert sorted(s.id for s in db.scalars(select(AuthSession))) == ["live", "revoked-lately"]
        assert sorted(t.token_hash[0] for t in db.scalars(select(RefreshToken))) == ["d", "e"]
        assert [c.phone for c in db.scalars(select(DevSignInCode))] == ["+84900000002"]
        assert sorted((r.job_id, r.period_start.day) for r in db.scalars(select(JobRun))) == sorted(
            [("tests.daily", days_ago(1).day), ("tests.quarterly", days_ago(80).day)])
    # A second run finds nothing left to delete.
    assert sum(o.rows for o in purge(engine, settings, now=NOW)) == 0


def test_batches_are_bounded_and_dry_run_deletes_nothing(engine: Engine) -> None:
    batch = 100
    settings = base_settings(retention_batch_size=batch)
    with Session(engine) as db:
        user = resident(db)
        note = notification(db, days_ago(1))
        db.commit()
    with engine.begin() as connection:
        connection.execute(insert(AuditEvent.__table__), [
            {"action": "sign_in", "at": days_ago(900 - i / 1000), "details": {}} for i in range(250)])
        connection.execute(insert(AuditEvent.__table__), [
            {"action": "sign_in", "at": days_ago(1), "details": {}} for _ in range(30)])
        connection.execute(insert(PushOutbox.__table__), [
            {"kind": "tokens", "notification_id": note, "status": "sent", "created_at": days_ago(30), "attempts": 1,
             "next_attempt_at": days_ago(30), "payload": {"tokens": [f"t{i}"]}} for i in range(230)])
    # One old window is made mostly of the old rows' children: 230 outbox rows hang off one notification.
    with Session(engine) as db:
        db.add(InboxItem(user_id=user, notification_id=note, created_at=days_ago(1)))
        db.commit()

    dry = {o.rule: o for o in purge(engine, settings, now=NOW, dry_run=True)}
    assert dry["audit"].rows == 250 and dry["push outbox"].rows == 230
    assert count(engine, AuditEvent) == 280 and count(engine, PushOutbox) == 230

    deletes: list[tuple[int, int]] = []  # (rows deleted, bind parameters) of each DELETE

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append((cursor.rowcount, len(parameters)))

    event.listen(engine, "after_cursor_execute", record)
    try:
        outcomes = {o.rule: o for o in purge(engine, settings, now=NOW, only={"audit", "push outbox"})}
    finally:
        event.remove(engine, "after_cursor_execute", record)

    assert outcomes["audit"].rows == 250 and outcomes["audit"].windows == 3
    assert outcomes["push outbox"].rows == 230 and outcomes["push outbox"].windows == 3
    assert count(engine, AuditEvent) == 30 and count(engine, PushOutbox) == 0
    assert len(deletes) == 6 and all(rows <= batch for rows, _ in deletes), deletes
    # A fixed handful of parameters per statement, however many rows the table holds.
    assert all(parameters <= 6 for _, parameters in deletes), deletes


def test_a_notification_with_more_dependents_than_a_batch(engine: Engine) -> None:
    """Read marks of a broadcast read by many go in batches before the broadcast itself."""
    with Session(engine) as db:
        note = notification(db, days_ago(400))
        db.commit()
    with engine.begin() as connection:
        connection.execute(insert(User.__table__), [
            {"kind": "resident", "display_name": f"SYNTHETIC {i}", "is_active": True, "created_at": NOW,
             "notification_prefs": {}} for i in range(260)])
        users = connection.execute(select(User.id)).scalars().all()
        connection.execute(insert(InboxItem.__table__), [
            {"user_id": u, "notification_id": note, "created_at": days_ago(399), "personal": False,
             "read_at": days_ago(399)} for u in users])

    [outcome] = purge(engine, base_settings(retention_batch_size=100), now=NOW, only={"notifications"})

    assert outcome.rows == 1 and outcome.dependents == {"inbox_item": 260}
    assert count(engine, InboxItem) == 0 and count(engine, Notification) == 0


async def test_the_daily_job_runs_once_per_day_across_workers(engine: Engine) -> None:
    settings = base_settings()
    with Session(engine) as db:
        db.add(AuditEvent(action="sign_in", at=days_ago(1000)))
        db.commit()
    job = retention_job(settings)
    host = HostContext(engine=engine, settings=settings, publish_event=lambda e: None)
    assert await run_due(engine, [job], host=host, worker="a") == [JOB_ID]
    assert await run_due(engine, [job], host=host, worker="b") == []
    assert count(engine, AuditEvent) == 0


def test_the_job_is_offered_to_the_host_unless_disabled() -> None:
    assert [job.id for job in scheduled_jobs(base_settings())] == [JOB_ID]
    assert scheduled_jobs(base_settings(retention_enabled=False)) == []


@pytest.mark.parametrize(("name", "value"), [
    ("SUPERAPP_RETENTION_AUDIT_DAYS", "30"),
    ("SUPERAPP_RETENTION_INBOX_DAYS", "0"),
    ("SUPERAPP_RETENTION_NOTIFICATION_DAYS", "100000"),
    ("SUPERAPP_RETENTION_OUTBOX_DAYS", "-1"),
    ("SUPERAPP_RETENTION_SESSION_DAYS", "soon"),
    ("SUPERAPP_RETENTION_JOB_RUN_DAYS", "0"),
    ("SUPERAPP_RETENTION_BATCH_SIZE", "10000000"),
])
def test_out_of_range_settings_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings()


def test_notifications_may_not_outlive_less_than_their_inbox_items(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPERAPP_RETENTION_INBOX_DAYS", "400")
    with pytest.raises(SettingsError, match="SUPERAPP_RETENTION_NOTIFICATION_DAYS .* SUPERAPP_RETENTION_INBOX_DAYS"):
        load_settings()


def test_cli_dry_run_and_a_bad_setting(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with Session(engine) as db:
        db.add(AuditEvent(action="sign_in", at=days_ago(1000)))
        db.commit()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SUPERAPP_")},
           "SUPERAPP_DATABASE_URL": sqlite_url, "SUPERAPP_ENV": "test", "SUPERAPP_LOG_JSON": "false",
           "SUPERAPP_SECRET_KEY": TEST_SECRET}
    dry = subprocess.run([str(SUPERAPP), "retention", "run", "--dry-run"], check=False, env=env, capture_output=True, text=True,
                         timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert "audit: would delete 1 audit_event row(s)" in dry.stdout
    assert count(engine, AuditEvent) == 1

    bad = subprocess.run([str(SUPERAPP), "retention", "run"], check=False, env={**env, "SUPERAPP_RETENTION_AUDIT_DAYS": "7"},
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "SUPERAPP_RETENTION_AUDIT_DAYS" in bad.stderr
    assert count(engine, AuditEvent) == 1
    engine.dispose()
