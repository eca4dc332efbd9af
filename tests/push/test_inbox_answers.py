"""Remembered inbox answers before routing: the same bytes as the routes, only when the route would say the same."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from core.app import create_app
from core.identity.service import find_or_create_resident, start_session
from push.inbox_answers import first_page_limit
from tests.conftest import TEST_SECRET, base_settings


@pytest.fixture
def api(database_url: str) -> Iterator[TestClient]:
    """A host on SQLite and on PostgreSQL with its inbox cache on (the default)."""
    app = create_app(base_settings(database_url=database_url, push_worker_enabled=False))
    with TestClient(app) as client:
        yield client


def _resident(app, phone: str, unit: str) -> dict[str, str]:
    with Session(app.state.engine, expire_on_commit=False) as db:
        user = find_or_create_resident(db, firebase_uid=None, phone=phone, address=None)
        user.home_unit_id = unit
        db.add(user)
        db.commit()
        pair = start_session(db, secret=TEST_SECRET, user=user, method="test", client=None, address=None)
    return {"Authorization": f"Bearer {pair.access_token}"}


def _answered(api: TestClient) -> int:
    return api.app.state.remembered_inbox_answers.answered


async def _notice(app, unit: str) -> int:
    receipt = await app.state.notifier.notify(miniapp="core", topic="announcements", title={"vi": "tin", "en": "news"},
                                              body={"vi": "b", "en": "b"}, units=[unit])
    return receipt.notification_id


@pytest.mark.parametrize("path", ["/api/inbox/badge", "/api/inbox", "/api/inbox?limit=5"])
async def test_the_second_ask_is_answered_before_routing_with_the_same_bytes(api: TestClient, path: str) -> None:
    """The route answers and remembers; the layer then answers the same body, with the host's headers."""
    headers = _resident(api.app, "+84905002001", "phu-xuan")
    await _notice(api.app, "phu-xuan")
    first = api.get(path, headers=headers)
    assert first.status_code == 200, first.text
    assert _answered(api) == 0
    second = api.get(path, headers=headers)
    assert _answered(api) == 1
    assert second.status_code == 200
    assert second.content == first.content
    assert second.headers["content-type"] == "application/json"
    assert second.headers["x-content-type-options"] == "nosniff"  # security headers apply as to every answer
    assert second.headers["x-request-id"]


async def test_a_change_that_reaches_the_person_goes_back_to_the_route(api: TestClient) -> None:
    """A notice to the resident's ward and a read mark each discard the remembered answer: never a stale one."""
    headers = _resident(api.app, "+84905002002", "phu-xuan")
    assert api.get("/api/inbox/badge", headers=headers).json() == {"unread": 0}
    assert api.get("/api/inbox/badge", headers=headers).json() == {"unread": 0}
    assert _answered(api) == 1
    item = await _notice(api.app, "phu-xuan")
    assert api.get("/api/inbox/badge", headers=headers).json() == {"unread": 1}
    assert _answered(api) == 1  # answered by the route: the note discarded the remembered zero
    assert api.post(f"/api/inbox/{item}/read", headers=headers).status_code == 204
    assert api.get("/api/inbox/badge", headers=headers).json() == {"unread": 0}
    assert _answered(api) == 1


async def test_each_language_has_its_own_page(api: TestClient) -> None:
    """The page is remembered per language: an English ask never gets the Vietnamese page."""
    headers = _resident(api.app, "+84905002003", "phu-xuan")
    await _notice(api.app, "phu-xuan")
    vi = {**headers, "Accept-Language": "vi"}
    en = {**headers, "Accept-Language": "en"}
    assert api.get("/api/inbox", headers=vi).json()["items"][0]["title"] == "tin"
    assert api.get("/api/inbox", headers=en).json()["items"][0]["title"] == "news"
    assert api.get("/api/inbox", headers=en).json()["items"][0]["title"] == "news"
    assert api.get("/api/inbox", headers=vi).json()["items"][0]["title"] == "tin"
    assert _answered(api) == 2


@pytest.mark.parametrize("query", ["cursor=bjE", "limit=0", "limit=51", "limit=5&limit=6", "limit=5&x=1", "limit=+5"])
def test_other_queries_go_to_the_route(api: TestClient, query: str) -> None:
    """Older pages, limits out of range and unknown parameters are the route's to judge (422 or a page)."""
    headers = _resident(api.app, "+84905002004", "phu-xuan")
    api.get("/api/inbox", headers=headers)
    answers = [api.get(f"/api/inbox?{query}", headers=headers).status_code for _ in range(2)]
    assert _answered(api) == 0
    assert all(status in (200, 422) for status in answers)


def test_callers_without_good_credentials_get_the_routes_problem(api: TestClient) -> None:
    """No token, a malformed one and another scheme: 401 problem details from the route, as before."""
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eDp5"}):
        answer = api.get("/api/inbox/badge", headers=headers)
        assert answer.status_code == 401, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
    assert _answered(api) == 0


def test_first_page_limit_reads_only_a_lone_limit() -> None:
    """No query means the default page; anything but one ``limit`` of 1..50 is not a first page."""
    assert first_page_limit(b"") == 20
    assert first_page_limit(b"limit=7") == 7
    assert [first_page_limit(q) for q in (b"limit=", b"limit=50x", b"limit=099", b"cursor=a", b"\xff")] == [None] * 5
