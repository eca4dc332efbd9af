"""The notifier and the inbox: recipients, preferences, quiet hours, the outbox rows, the API."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from core.app import create_app
from core.identity.service import create_official, find_or_create_resident, start_session
from push.models import Device, InboxItem, OutboxKind, PushOutbox, UnitFollow
from push.notifier import NotifierError, in_quiet_hours
from tests.conftest import TEST_SECRET, base_settings

PASSWORD = "Hue-2025-strong-pw"


@pytest.fixture
def api(database_url: str):
    """A host on SQLite and on PostgreSQL; its delivery worker is off so outbox rows stay put."""
    app = create_app(base_settings(database_url=database_url, push_worker_enabled=False))
    with TestClient(app) as client:
        yield client


def _resident(app, phone: str, unit: str, **prefs) -> tuple[int, dict[str, str]]:
    with Session(app.state.engine, expire_on_commit=False) as db:
        user = find_or_create_resident(db, firebase_uid=None, phone=phone, address=None)
        user.home_unit_id = unit
        user.notification_prefs = prefs
        db.add(user)
        db.commit()
        pair = start_session(db, secret=TEST_SECRET, user=user, method="test", client=None, address=None)
    return user.id, {"Authorization": f"Bearer {pair.access_token}"}


def _official(app, username: str, role: str, unit: str) -> tuple[int, dict[str, str]]:
    with Session(app.state.engine, expire_on_commit=False) as db:
        user = create_official(db, username=username, display_name=username, password=PASSWORD,
                               memberships=[(role, unit)])
        pair = start_session(db, secret=TEST_SECRET, user=user, method="test", client=None, address=None)
    return user.id, {"Authorization": f"Bearer {pair.access_token}"}


def _device(client, headers, token: str) -> int:
    response = client.post("/api/devices", headers=headers,
                           json={"token": token, "platform": "android", "app_version": "3.2.1"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _outbox(app, **where) -> list[PushOutbox]:
    with Session(app.state.engine) as db:
        rows = list(db.exec(select(PushOutbox).order_by(PushOutbox.id)))
    return [r for r in rows if all(getattr(r, k) == v for k, v in where.items())]


async def test_unit_notification_reaches_residents_and_followers_inbox(api) -> None:
    app = api.app
    lan, lan_h = _resident(app, "+84905000101", "phu-xuan")
    minh, minh_h = _resident(app, "+84905000102", "kim-long")
    hoa, hoa_h = _resident(app, "+84905000103", "kim-long")
    with Session(app.state.engine) as db:
        db.add(UnitFollow(user_id=hoa, unit_id="phu-xuan"))
        db.commit()
    for headers, token in ((lan_h, "tok-lan-" + "a" * 20), (minh_h, "tok-minh-" + "b" * 20), (hoa_h, "tok-hoa-" + "c" * 20)):
        _device(api, headers, token)
    receipt = await app.state.notifier.notify(
        miniapp="core", topic="announcements", title={"vi": "Cắt điện", "en": "Power cut"},
        body={"vi": "Phú Xuân cắt điện 8h-11h", "en": "Phu Xuan power cut 8-11"}, units=["phu-xuan"])
    assert receipt.recipients == 2 and set(receipt.user_ids) == {lan, hoa}
    inbox = api.get("/api/inbox", headers={**lan_h, "Accept-Language": "en"}).json()
    assert inbox["unread"] == 1 and inbox["items"][0]["title"] == "Power cut"
    assert api.get("/api/inbox", headers=minh_h).json()["items"] == []
    # non-critical: per-device rows, data only (no text, no phone) in the payload
    [row] = _outbox(app, kind=OutboxKind.tokens)
    assert sorted(row.payload["tokens"]) == sorted(["tok-lan-" + "a" * 20, "tok-hoa-" + "c" * 20])
    assert set(row.payload) == {"notification_id", "severity", "tokens"}


async def test_critical_unit_warning_goes_to_the_unit_topic(api) -> None:
    app = api.app
    lan, lan_h = _resident(app, "+84905000111", "phu-xuan", quiet_hours={"start": "00:00", "end": "23:59"})
    _device(api, lan_h, "tok-lan-" + "d" * 20)
    receipt = await app.state.notifier.notify(
        miniapp="core", topic="announcements", title={"vi": "Lũ", "en": "Flood"},
        body={"vi": "Nước lên nhanh", "en": "Water rising fast"}, severity="critical", units=["phu-xuan", "kim-long"])
    topics = sorted(r.payload["topic"] for r in _outbox(app, kind=OutboxKind.topic))
    assert topics == ["unit_kim-long", "unit_phu-xuan"]
    # the resident is reached through the topic: no per-token job, and quiet hours do not hold it back
    assert [r for r in _outbox(app, kind=OutboxKind.tokens) if r.notification_id == receipt.notification_id] == []
    assert receipt.held_for_quiet_hours == 0 and receipt.recipients == 1


async def test_muted_topics_and_quiet_hours(api) -> None:
    app = api.app
    muted, muted_h = _resident(app, "+84905000121", "phu-xuan", muted={"core": ["announcements"]})
    sleepy, sleepy_h = _resident(app, "+84905000122", "phu-xuan", quiet_hours={"start": "22:00", "end": "06:00"})
    _device(api, muted_h, "tok-muted-" + "e" * 20)
    _device(api, sleepy_h, "tok-sleepy-" + "f" * 20)
    night = datetime(2026, 11, 25, 16, 30, tzinfo=UTC)  # 23:30 in Hue
    receipt = await app.state.notifier.notify(
        miniapp="core", topic="announcements", title={"vi": "a", "en": "a"}, body={"vi": "b", "en": "b"},
        users=[muted, sleepy], now=night)
    assert receipt.recipients == 2 and receipt.muted == 1 and receipt.held_for_quiet_hours == 1
    [row] = _outbox(app, kind=OutboxKind.tokens)
    assert row.payload["tokens"] == ["tok-sleepy-" + "f" * 20]
    assert row.next_attempt_at.astimezone(UTC) == datetime(2026, 11, 25, 23, 0, tzinfo=UTC)  # 06:00 in Hue
    # both still find it in their inbox
    assert api.get("/api/inbox/badge", headers=muted_h).json() == {"unread": 1}


def test_quiet_hours_boundaries() -> None:
    prefs = {"quiet_hours": {"start": "22:00", "end": "06:00"}}
    assert in_quiet_hours(prefs, datetime(2026, 1, 1, 14, 59, tzinfo=UTC)) is None  # 21:59 Hue
    assert in_quiet_hours(prefs, datetime(2026, 1, 1, 15, 0, tzinfo=UTC)) == datetime(2026, 1, 1, 23, 0, tzinfo=UTC)
    assert in_quiet_hours(prefs, datetime(2026, 1, 1, 22, 59, tzinfo=UTC)) == datetime(2026, 1, 1, 23, 0, tzinfo=UTC)
    assert in_quiet_hours(prefs, datetime(2026, 1, 1, 23, 0, tzinfo=UTC)) is None  # 06:00 Hue
    assert in_quiet_hours({}, datetime(2026, 1, 1, 15, 0, tzinfo=UTC)) is None


async def test_notifier_refuses_undeclared_topics_and_empty_audiences(api) -> None:
    notifier = api.app.state.notifier
    with pytest.raises(NotifierError, match="declares no notification topic 'surprise'") as info:
        await notifier.notify(miniapp="festival", topic="surprise", title={"vi": "a", "en": "a"},
                              body={"vi": "b", "en": "b"}, users=[1])
    assert info.value.field == "topic"
    with pytest.raises(NotifierError, match="at least one user, unit or role"):
        await notifier.notify(miniapp="festival", topic="programme_changes", title={"vi": "a", "en": "a"},
                              body={"vi": "b", "en": "b"})


def test_inbox_read_state_pagination_and_object_level_checks(api) -> None:
    import asyncio

    app = api.app
    lan, lan_h = _resident(app, "+84905000131", "phu-xuan")
    minh, minh_h = _resident(app, "+84905000132", "kim-long")
    for n in range(5):
        asyncio.run(app.state.notifier.notify(miniapp="core", topic="announcements", title={"vi": f"t{n}", "en": f"t{n}"},
                                              body={"vi": "b", "en": "b"}, users=[lan]))
    first = api.get("/api/inbox?limit=2", headers=lan_h).json()
    second = api.get(f"/api/inbox?limit=2&cursor={first['next_cursor']}", headers=lan_h).json()
    third = api.get(f"/api/inbox?limit=2&cursor={second['next_cursor']}", headers=lan_h).json()
    titles = [i["title"] for page in (first, second, third) for i in page["items"]]
    assert titles == ["t4", "t3", "t2", "t1", "t0"] and third["next_cursor"] is None
    item = first["items"][0]["id"]
    assert api.post(f"/api/inbox/{item}/read", headers=minh_h).status_code == 404  # not Minh's
    assert api.post(f"/api/inbox/{item}/read", headers=lan_h).status_code == 204
    assert api.get("/api/inbox/badge", headers=lan_h).json() == {"unread": 4}
    assert api.post("/api/inbox/read-all", headers=lan_h).json() == {"marked": 4}
    assert api.get("/api/inbox/badge", headers=lan_h).json() == {"unread": 0}
    bad = api.get("/api/inbox?cursor=%%%", headers=lan_h)
    assert bad.status_code == 422 and bad.json()["field"] == "query.cursor"


def test_devices_register_move_and_unregister(api) -> None:
    app = api.app
    lan, lan_h = _resident(app, "+84905000141", "phu-xuan")
    minh, minh_h = _resident(app, "+84905000142", "kim-long")
    token = "shared-phone-" + "g" * 30
    device_id = _device(api, lan_h, token)
    subscribe = _outbox(app, kind=OutboxKind.subscribe)
    assert [(r.payload["topic"], r.payload["tokens"]) for r in subscribe] == [("unit_phu-xuan", [token])]
    # the phone signs in as Minh: it leaves Lan's topics and joins Minh's
    assert _device(api, minh_h, token) == device_id
    assert [r.payload["topic"] for r in _outbox(app, kind=OutboxKind.unsubscribe)] == ["unit_phu-xuan"]
    assert api.get("/api/devices", headers=lan_h).json() == []
    assert api.delete(f"/api/devices/{device_id}", headers=lan_h).status_code == 404
    assert api.delete(f"/api/devices/{device_id}", headers=minh_h).status_code == 204
    bad = api.post("/api/devices", headers=lan_h, json={"token": "short", "platform": "android", "app_version": "1"})
    assert bad.status_code == 422 and bad.json()["field"] == "body.token"
    unknown = api.post("/api/devices", headers=lan_h,
                       json={"token": "x" * 40, "platform": "symbian", "app_version": "1"})
    assert unknown.status_code == 422 and unknown.json()["field"] == "body.platform"


def test_follow_units(api) -> None:
    lan, lan_h = _resident(api.app, "+84905000151", "phu-xuan")
    _device(api, lan_h, "tok-follow-" + "h" * 20)
    assert api.put("/api/me/follows/kim-long", headers=lan_h).status_code == 204
    assert api.get("/api/me/follows", headers=lan_h).json() == ["kim-long"]
    assert "unit_kim-long" in [r.payload["topic"] for r in _outbox(api.app, kind=OutboxKind.subscribe)]
    assert api.put("/api/me/follows/so-tu-phap", headers=lan_h).status_code == 404  # not a commune or ward
    assert api.delete("/api/me/follows/kim-long", headers=lan_h).status_code == 204
    assert api.get("/api/me/follows", headers=lan_h).json() == []


def test_officials_send_within_their_reach(api) -> None:
    app = api.app
    _resident(app, "+84905000161", "phu-xuan")
    _, px = _official(app, "px.sender", "commune_official", "phu-xuan")
    _, dept = _official(app, "dept.sender", "department_official", "so-y-te")
    body = {"title": {"vi": "Tiêm chủng", "en": "Vaccination"}, "body": {"vi": "Thứ bảy", "en": "Saturday"}}
    own = api.post("/api/notifications", headers=px, json={**body, "units": ["phu-xuan"]})
    assert own.status_code == 202 and own.json()["recipients"] == 1
    other = api.post("/api/notifications", headers=px, json={**body, "units": ["kim-long"]})
    assert other.status_code == 403 and other.json()["field"] == "body.units.0"
    assert api.post("/api/notifications", headers=dept, json={**body, "units": ["kim-long"]}).status_code == 202
    unknown = api.post("/api/notifications", headers=dept, json={**body, "units": ["atlantis"]})
    assert unknown.status_code == 422 and unknown.json()["field"] == "body.units.0"
    missing = api.post("/api/notifications", headers=dept, json={**body})
    assert missing.status_code == 422 and missing.json()["field"] == "body.units"
    lan_only = api.post("/api/notifications", headers=dept, json={**body, "title": {"vi": "x"}, "units": ["phu-xuan"]})
    assert lan_only.status_code == 422 and lan_only.json()["field"] == "body.title.en"
