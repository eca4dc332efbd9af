"""Fixtures for push delivery: the fake FCM, a firebase-admin app pointed at it, databases, a movable clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime, timedelta

import firebase_admin
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.db import make_engine
from core.feed.models import Severity
from core.identity.models import User, UserKind, utcnow
from plugins.fakes.firebase import (
    DEFAULT_ACCESS_TOKEN,
    FakeFcm,
    Http2Fcm,
    adelete_test_app,
    initialize_test_app,
    no_retry_backoff,
    serve_fcm,
    serve_fcm_http2,
)
from push.fcm import FcmSender
from push.models import Device, Notification, OutboxKind, Platform, PushOutbox
from tests.conftest import base_settings

# Message(token=...) is deprecated in favour of fid since firebase-admin 7.x; the sender silences
# it itself, but tests that build messages for comparison may not.
pytestmark = pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning")


@pytest.fixture(autouse=True)
def instant_sdk_retries() -> Iterator[None]:
    """The SDK's own 500/503 retries without their 0.5-4 s sleeps."""
    with no_retry_backoff():
        yield


@pytest.fixture
def fcm() -> Iterator[FakeFcm]:
    """A running fake FCM that insists on the fake credential's access token."""
    with serve_fcm(access_token=DEFAULT_ACCESS_TOKEN) as fake:
        yield fake
    assert not fake.errors


@pytest.fixture
async def firebase_app(fcm: FakeFcm) -> AsyncIterator[firebase_admin.App]:
    """A firebase-admin app whose messaging talks to the fake, deleted inside the test's loop."""
    app = initialize_test_app()
    yield app
    await adelete_test_app(app)


@pytest.fixture
def sender(firebase_app: firebase_admin.App) -> FcmSender:
    """The real sender on the test app (the fixture deletes the app, not the sender)."""
    return FcmSender(firebase_app)


@pytest.fixture
def fast_fcm(tmp_path) -> Iterator[Http2Fcm]:
    """The HTTP/2 + TLS fake (counters only), for tests that send thousands of messages."""
    with serve_fcm_http2(tmp_path / "tls", access_token=DEFAULT_ACCESS_TOKEN) as fake:
        yield fake
    assert not fake.errors


@pytest.fixture
async def fast_sender(fast_fcm: Http2Fcm) -> AsyncIterator[FcmSender]:
    """The real sender on an app talking to the HTTP/2 fake, deleted inside the test's loop."""
    app = initialize_test_app()
    yield FcmSender(app)
    await adelete_test_app(app)


def engine_for(url: str) -> Engine:
    """An engine for a ``database_url`` as the settings would build it."""
    return make_engine(base_settings(database_url=url).sqlalchemy_url)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on SQLite and on PostgreSQL (the test runs once for each)."""
    engine = engine_for(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    """An engine on SQLite only, for tests where the database does not matter."""
    engine = engine_for(sqlite_url)
    yield engine
    engine.dispose()


class Clock:
    """The real time plus an offset the test can move forward (the worker's notion of now)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, seconds: float) -> None:
        """Move now forward."""
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    """A movable clock for workers."""
    return Clock()


def add_notification(engine: Engine, severity: Severity = Severity.info) -> int:
    """A committed notification (its content stays in our database); returns its id."""
    with Session(engine) as db:
        note = Notification(miniapp="core", topic="test", severity=severity, title_vi="Cảnh báo lũ",
                            title_en="Flood warning", body_vi="Nội dung riêng tư", body_en="Private content")
        db.add(note)
        db.commit()
        return note.id


def add_devices(engine: Engine, tokens: Sequence[str]) -> None:
    """Active devices of one resident for ``tokens``."""
    with Session(engine) as db:
        user = User(kind=UserKind.resident, display_name="Nguyễn Văn A")
        db.add(user)
        db.flush()
        for token in tokens:
            db.add(Device(user_id=user.id, token=token, platform=Platform.android, app_version="1.0"))
        db.commit()


def add_rows(engine: Engine, notification_id: int, tokens: Sequence[str], *, per_row: int = 500,
             severity: Severity = Severity.info) -> list[int]:
    """Token rows of ``per_row`` tokens each, as the notifier writes them; returns their ids."""
    with Session(engine) as db:
        rows = [PushOutbox(kind=OutboxKind.tokens, notification_id=notification_id,
                           payload={"notification_id": notification_id, "severity": severity.value,
                                    "tokens": list(tokens[start:start + per_row])})
                for start in range(0, len(tokens), per_row)]
        db.add_all(rows)
        db.commit()
        return [row.id for row in rows]


def outbox(engine: Engine) -> list[PushOutbox]:
    """Every outbox row, by id."""
    with Session(engine) as db:
        return list(db.exec(select(PushOutbox).order_by(PushOutbox.id)))


def devices(engine: Engine) -> dict[str, Device]:
    """Device rows by token."""
    with Session(engine) as db:
        return {d.token: d for d in db.exec(select(Device))}
