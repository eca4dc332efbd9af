"""Remembered inbox pages and badges: served without the database, discarded by every change that reaches the person."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlmodel import Session

from core.app import create_app
from core.identity.service import find_or_create_resident, start_session
from push.inbox_cache import EVERYONE, InboxCache, user_key
from tests.conftest import TEST_SECRET, base_settings


@pytest.fixture
def api(database_url: str) -> Iterator[TestClient]:
    """A host on SQLite and on PostgreSQL with its inbox cache on (the default)."""
    app = create_app(base_settings(database_url=database_url, push_worker_enabled=False))
    with TestClient(app) as client:
        yield client


def _resident(app, phone: str, unit: str) -> tuple[int, dict[str, str]]:
    with Session(app.state.engine, expire_on_commit=False) as db:
        user = find_or_create_resident(db, firebase_uid=None, phone=phone, address=None)
        user.home_unit_id = unit
        db.add(user)
        db.commit()
        pair = start_session(db, secret=TEST_SECRET, user=user, method="test", client=None, address=None)
    return user.id, {"Authorization": f"Bearer {pair.access_token}"}


@contextmanager
def _statements(app) -> Iterator[list[str]]:
    """The SQL statements the app's engine runs inside the block."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement)

    event.listen(app.state.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(app.state.engine, "before_cursor_execute", record)


def _badge(api: TestClient, headers: dict[str, str]) -> int:
    response = api.get("/api/inbox/badge", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["unread"]


async def _notice(app, **audience) -> int:
    receipt = await app.state.notifier.notify(miniapp="core", topic="announcements", title={"vi": "t", "en": "t"},
                                              body={"vi": "b", "en": "b"}, **audience)
    return receipt.notification_id


async def test_remembered_answers_skip_the_database_until_a_change_reaches_the_person(api) -> None:
    app = api.app
    lan, lan_h = _resident(app, "+84905001001", "phu-xuan")
    assert _badge(api, lan_h) == 0
    with _statements(app) as seen:
        assert _badge(api, lan_h) == 0
        assert api.get("/api/inbox", headers=lan_h).json()["items"] == []  # a miss: read once
        assert api.get("/api/inbox", headers=lan_h).json()["items"] == []  # then remembered
    assert _badge_reads(seen) == 1  # the page's own unread count; the badge came from memory

    ward = await _notice(app, units=["phu-xuan"])  # reaches Lan: both answers are discarded
    assert _badge(api, lan_h) == 1
    assert [i["id"] for i in api.get("/api/inbox", headers=lan_h).json()["items"]] == [ward]

    await _notice(app, units=["kim-long"])  # reaches someone else: Lan's answers stay remembered
    with _statements(app) as seen:
        assert _badge(api, lan_h) == 1
        assert [i["id"] for i in api.get("/api/inbox", headers=lan_h).json()["items"]] == [ward]
    assert seen == []

    assert api.put("/api/me/follows/kim-long", headers=lan_h).status_code == 204
    followed = await _notice(app, units=["kim-long"])
    assert _badge(api, lan_h) == 2
    personal = await _notice(app, users=[lan])
    assert _badge(api, lan_h) == 3
    city = await _notice(app, city=True)
    assert [i["id"] for i in api.get("/api/inbox", headers=lan_h).json()["items"]] == [city, personal, followed, ward]

    assert api.post(f"/api/inbox/{ward}/read", headers=lan_h).status_code == 204
    assert _badge(api, lan_h) == 3
    assert api.post("/api/inbox/read-all", headers=lan_h).json() == {"marked": 3}
    assert _badge(api, lan_h) == 0
    assert api.delete("/api/me/follows/kim-long", headers=lan_h).status_code == 204
    await _notice(app, units=["kim-long"])
    assert _badge(api, lan_h) == 0

    # Moving home is an authentication invalidation: the page follows the new audience at once.
    assert api.patch("/api/me", headers=lan_h, json={"home_unit_id": "kim-long"}).status_code == 200
    moved = await _notice(app, units=["kim-long"])
    assert _badge(api, lan_h) == 1
    assert api.get("/api/inbox", headers=lan_h).json()["items"][0]["id"] == moved


def _badge_reads(statements: list[str]) -> int:
    """How many times the unread count was computed (the badge query counts with a LIMIT of the cap)."""
    return sum(1 for s in statements if "count(" in s.lower())


def test_a_change_during_the_read_discards_the_answer() -> None:
    cache = InboxCache()
    stamp = cache.stamp()
    cache.apply(["unit:phu-xuan"])  # arrives while the queries of the answer run
    cache.remember("k", b"old", stamp=stamp, user_id=1, audiences=["unit:phu-xuan"])
    assert cache.recall("k") is None
    stamp = cache.stamp()
    cache.remember("k", b"new", stamp=stamp, user_id=1, audiences=["unit:phu-xuan"])
    assert cache.recall("k") == b"new"
    cache.apply(["unit:kim-long", user_key(2)])
    assert cache.recall("k") == b"new"
    cache.apply([user_key(1)])
    assert cache.recall("k") is None


def test_notes_stay_bounded_and_forgetting_them_forgets_the_answers() -> None:
    cache = InboxCache(max_notes=100)
    cache.remember("k", b"v", stamp=cache.stamp(), user_id=1, audiences=["city"])
    for user_id in range(2, 150):
        cache.apply([user_key(user_id)])
    assert len(cache._notes) <= 100
    assert cache.recall("k") is None  # its notes were forgotten: it cannot be trusted any more
    cache.remember("k", b"v2", stamp=cache.stamp(), user_id=1, audiences=["city"])
    assert cache.recall("k") == b"v2"
    cache.apply([EVERYONE])
    assert cache.recall("k") is None


def test_a_notice_sent_through_one_worker_discards_the_answers_of_another(sqlite_url: str, redis_url: str) -> None:
    settings = base_settings(database_url=sqlite_url, redis_url=redis_url, push_worker_enabled=False)
    with TestClient(create_app(settings)) as a, TestClient(create_app(settings)) as b:
        lan, lan_h = _resident(a.app, "+84905001002", "phu-xuan")
        assert _badge(b, lan_h) == 0
        with _statements(b.app) as seen:
            assert _badge(b, lan_h) == 0
        assert seen == []  # remembered by worker b
        a.portal.call(lambda: _notice(a.app, units=["phu-xuan"]))
        deadline = time.monotonic() + 10
        while _badge(b, lan_h) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)  # the note travels through Redis
        assert _badge(b, lan_h) == 1
