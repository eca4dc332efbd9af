"""A deadline notice's claim row and its notification commit together, or neither does (one transaction)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from miniapps.tasks import jobs
from miniapps.tasks.models import Notice
from push.models import Notification
from tests.miniapps.tasks.conftest import make_task


def _tasks_notifications(engine) -> list[Notification]:
    with Session(engine) as db:
        return list(db.exec(select(Notification).where(Notification.miniapp == "tasks")))


def test_a_failed_send_leaves_no_claim_so_the_next_run_sends_it(api: TestClient, engine, make_persona,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    make_persona("commune_kl")
    make_task(engine, units=("kim-long",), title="Đã quá hạn", now=datetime.now(UTC) - timedelta(days=10),
              deadline=datetime.now(UTC) - timedelta(days=1))
    notifier, host = api.app.state.notifier, api.app.state.host
    real = notifier.send

    def written_then_failed(db, **fields):
        real(db, **fields)  # the notice's rows are in the transaction, then the send fails
        raise RuntimeError("notifier down")

    monkeypatch.setattr(notifier, "send", written_then_failed)
    assert anyio.run(jobs.send_deadline_notices, host) == 0
    with Session(engine) as db:
        assert db.exec(select(Notice)).all() == []  # not claimed: the next run tries again
    assert _tasks_notifications(engine) == []

    monkeypatch.setattr(notifier, "send", real)
    assert anyio.run(jobs.send_deadline_notices, host) == 1
    [sent] = _tasks_notifications(engine)
    with Session(engine) as db:
        [notice] = db.exec(select(Notice)).all()
    assert (notice.kind, notice.notification_id) == ("overdue", sent.id) and sent.topic == "overdue_notices"
