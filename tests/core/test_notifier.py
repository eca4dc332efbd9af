"""The notifier and the inbox: recipients, preferences, quiet hours, the outbox rows, the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func
from sqlmodel import Session, select

from core.app import create_app
from core.identity.service import create_official, find_or_create_resident, start_session
from push.fcm import TokenResult
from push.models import InboxItem, Notification, NotificationAudience, OutboxKind, PushOutbox
from push.notifier import NotifierError, in_quiet_hours
from push.outbox import OutboxWorker
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


class RecordingSender:
    """A push sender that accepts everything and remembers what it was asked to send."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.topics: list[str] = []

    async def send_to_tokens(self, tokens, **_: object) -> list[TokenResult]:
        self.tokens.extend(tokens)
        return [TokenResult(t, "ok") for t in tokens]

    async def send_to_topic(self, topic, **_: object) -> TokenResult:
        self.topics.append(topic)
        return TokenResult(topic, "ok")

    async def subscribe(self, tokens, topic) -> list[TokenResult]:
        return [TokenResult(t, "ok") for t in tokens]

    unsubscribe = subscribe

    async def aclose(self) -> None:
        return None


async def _deliver(app, clock=None) -> RecordingSender:
    """Run a delivery worker until the outbox is empty (planning included); what it sent."""
    sender = RecordingSender()
    worker = OutboxWorker(app.state.engine, sender, **({"clock": clock} if clock else {}))
    await worker.drain()
    return sender


def _rows(app, table) -> int:
    with Session(app.state.engine) as db:
        return db.exec(select(func.count()).select_from(table)).one()


async def test_unit_notice_is_stored_once_and_read_by_residents_and_followers(api) -> None:
    app = api.app
    lan, lan_h = _resident(app, "+84905000101", "phu-xuan")
    minh, minh_h = _resident(app, "+84905000102", "kim-long")
    hoa, hoa_h = _resident(app, "+84905000103", "kim-long")
    assert api.put("/api/me/follows/phu-xuan", headers=hoa_h).status_code == 204
    for headers, token in ((lan_h, "tok-lan-" + "a" * 20), (minh_h, "tok-minh-" + "b" * 20), (hoa_h, "tok-hoa-" + "c" * 20)):
        _device(api, headers, token)
    receipt = await app.state.notifier.notify(
        miniapp="core", topic="announcements", title={"vi": "Cắt điện", "en": "Power cut"},
        body={"vi": "Phú Xuân cắt điện 8h-11h", "en": "Phu Xuan power cut 8-11"}, units=["phu-xuan"])
    assert receipt.audiences == ["unit:phu-xuan"] and receipt.personal == 0
    # fan-out on read: one audience row, no inbox row per resident, one planning job
    assert _rows(app, InboxItem) == 0 and _rows(app, NotificationAudience) == 1
    assert [r.kind for r in _outbox(app, notification_id=receipt.notification_id)] == [OutboxKind.plan]
    inbox = api.get("/api/inbox", headers={**lan_h, "Accept-Language": "en"}).json()
    assert inbox["unread"] == 1 and inbox["items"][0]["title"] == "Power cut"
    assert api.get("/api/inbox", headers=hoa_h).json()["items"][0]["id"] == receipt.notification_id
    assert api.get("/api/inbox", headers=minh_h).json()["items"] == []
    # the worker plans per device (data only in the payload) and sends to Lan's and Hoa's phones
    sender = await _deliver(app)
    assert sorted(sender.tokens) == sorted(["tok-lan-" + "a" * 20, "tok-hoa-" + "c" * 20])
    [row] = _outbox(app, kind=OutboxKind.devices)
    assert set(row.payload) == {"notification_id", "severity", "devices"} and row.status == "sent"
    with Session(app.state.engine) as db:
        delivery = db.get(Notification, receipt.notification_id).delivery
    assert delivery["status"] == "planned" and delivery["devices"] == 2 and delivery["jobs"] == 1


async def test_a_notice_in_the_callers_transaction_is_sent_on_commit_only(api) -> None:
    app = api.app
    lan, lan_h = _resident(app, "+84905000104", "phu-xuan")
    with Session(app.state.engine) as db:
        app.state.notifier.send(db, miniapp="core", topic="announcements", title={"vi": "a", "en": "a"},
                                body={"vi": "b", "en": "b"}, users=[lan], units=["phu-xuan"])
        db.rollback()  # the domain change failed: the notice goes with it
    assert api.get("/api/inbox/badge", headers=lan_h).json() == {"unread": 0}
    assert _outbox(app) == []
    with Session(app.state.engine) as db:
        receipt = app.state.notifier.send(db, miniapp="core", topic="announcements", title={"vi": "a", "en": "a"},
                                          body={"vi": "b", "en": "b"}, users=[lan], units=["phu-xuan"])
        db.commit()
    assert receipt.personal == 1
    # named personally and a resident of the unit: one entry, one unread
    page = api.get("/api/inbox", headers=lan_h).json()
    assert [i["id"] for i in page["items"]] == [receipt.notification_id] and page["unread"] == 1


async def test_people_see_broadcasts_from_when_they_joined_the_audience(api) -> None:
    app = api.app
    lan, lan_h = _resident(app, "+84905000105", "phu-xuan")
    before = await app.state.notifier.notify(miniapp="core", topic="announcements", title={"vi": "cũ", "en": "old"},
                                             body={"vi": "b", "en": "b"}, units=["kim-long"])
    assert api.get("/api/inbox", headers=lan_h).json()["items"] == []
    assert api.patch("/api/me", headers=lan_h, json={"home_unit_id": "kim-long"}).status_code == 200
    after = await app.state.notifier.notify(miniapp="core", topic="announcements", title={"vi": "mới", "en": "new"},
                                            body={"vi": "b", "en": "b"}, units=["kim-long"])
    ids = [i["id"] for i in api.get("/api/inbox", headers=lan_h).json()["items"]]
    assert ids == [after.notification_id] and before.notification_id not in ids
    assert api.post(f"/api/inbox/{before.notification_id}/read", headers=lan_h).status_code == 404


async def test_role_and_city_broadcasts_reach_only_their_audiences(api) -> None:
    app = api.app
    lan, lan_h = _resident(app, "+84905000106", "phu-xuan")
    px, px_h = _official(app, "px.role", "commune_official", "phu-xuan")
    kl, kl_h = _official(app, "kl.role", "commune_official", "kim-long")
    to_role = await app.state.notifier.notify(miniapp="core", topic="announcements", title={"vi": "r", "en": "r"},
                                              body={"vi": "b", "en": "b"}, roles=[("commune_official", "phu-xuan")])
    to_city = await app.state.notifier.notify(miniapp="core", topic="announcements", title={"vi": "c", "en": "c"},
                                              body={"vi": "b", "en": "b"}, city=True)
    assert [i["id"] for i in api.get("/api/inbox", headers=px_h).json()["items"]] == [to_role.notification_id]
    assert api.get("/api/inbox", headers=kl_h).json()["items"] == []
    assert [i["id"] for i in api.get("/api/inbox", headers=lan_h).json()["items"]] == [to_city.notification_id]


async def test_critical_unit_warning_goes_to_the_unit_topic(api) -> None:
    app = api.app
    lan, lan_h = _resident(app, "+84905000111", "phu-xuan", quiet_hours={"start": "00:00", "end": "23:59"})
    _device(api, lan_h, "tok-lan-" + "d" * 20)
    receipt = await app.state.notifier.notify(
        miniapp="core", topic="announcements", title={"vi": "Lũ", "en": "Flood"},
        body={"vi": "Nước lên nhanh", "en": "Water rising fast"}, severity="critical", units=["phu-xuan", "kim-long"])
    topics = sorted(r.payload["topic"] for r in _outbox(app, kind=OutboxKind.topic))
    assert topics == ["unit_kim-long", "unit_phu-xuan"]
    # the resident is reached through the topic: no planning job, no per-device job, quiet hours do not apply
    assert [r for r in _outbox(app) if r.notification_id == receipt.notification_id
            and r.kind in (OutboxKind.plan, OutboxKind.devices)] == []
    assert receipt.push_jobs == 2
    sender = await _deliver(app)
    assert sorted(sender.topics) == topics and sender.tokens == []


async def test_muted_topics_and_quiet_hours(api) -> None:
    app = api.app
    muted, muted_h = _resident(app, "+84905000121", "phu-xuan", muted={"core": ["announcements"]})
    sleepy, sleepy_h = _resident(app, "+84905000122", "phu-xuan", quiet_hours={"start": "22:00", "end": "06:00"})
    _device(api, muted_h, "tok-muted-" + "e" * 20)
    _device(api, sleepy_h, "tok-sleepy-" + "f" * 20)
    # the worker plans at 23:30 in Hue, tomorrow (the planning job is due by then)
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    night = datetime.combine(tomorrow, datetime.min.time(), tzinfo=UTC).replace(hour=16, minute=30)
    receipt = await app.state.notifier.notify(
        miniapp="core", topic="announcements", title={"vi": "a", "en": "a"}, body={"vi": "b", "en": "b"},
        users=[muted, sleepy])
    assert receipt.personal == 2
    sender = await _deliver(app, clock=lambda: night)
    assert sender.tokens == []  # one muted, one held until 06:00
    [row] = _outbox(app, kind=OutboxKind.devices)
    assert row.next_attempt_at.astimezone(UTC) == night.replace(hour=23, minute=0)  # 06:00 in Hue
    with Session(app.state.engine) as db:
        delivery = db.get(Notification, receipt.notification_id).delivery
    assert (delivery["devices"], delivery["muted"], delivery["held"]) == (1, 1, 1)
    # both still find it in their inbox
    assert api.get("/api/inbox/badge", headers=muted_h).json() == {"unread": 1}


async def test_planning_resumes_where_the_last_committed_batch_stopped(api) -> None:
    app = api.app
    ids = []
    for n in range(3):
        uid, headers = _resident(app, f"+8490500017{n}", "phu-xuan")
        ids.append(_device(api, headers, f"tok-resume-{n}-" + "r" * 20))
    receipt = await app.state.notifier.notify(miniapp="core", topic="announcements", title={"vi": "a", "en": "a"},
                                              body={"vi": "b", "en": "b"}, units=["phu-xuan"])
    [plan] = _outbox(app, kind=OutboxKind.plan)
    # a worker died after committing the batch that ended at the first device
    with Session(app.state.engine) as db:
        row = db.get(PushOutbox, plan.id)
        row.payload = {**row.payload, "progress": {"after": ids[0], "devices": 1, "muted": 0, "held": 0, "jobs": 1}}
        db.add(row)
        db.commit()
    sender = await _deliver(app)
    assert sorted(sender.tokens) == [f"tok-resume-{n}-" + "r" * 20 for n in (1, 2)]
    with Session(app.state.engine) as db:
        assert db.get(Notification, receipt.notification_id).delivery["devices"] == 3


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
    with pytest.raises(NotifierError, match="at least one user, unit or role") as info:
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
    # broadcasts: read one by one (a read mark) or all at once (one row, whatever their number)
    for _ in range(3):
        asyncio.run(app.state.notifier.notify(miniapp="core", topic="announcements", title={"vi": "u", "en": "u"},
                                              body={"vi": "b", "en": "b"}, units=["phu-xuan"]))
    newest = api.get("/api/inbox?limit=1", headers=lan_h).json()
    assert newest["unread"] == 3 and newest["items"][0]["read"] is False
    assert api.post(f"/api/inbox/{newest['items'][0]['id']}/read", headers=lan_h).status_code == 204
    assert api.post(f"/api/inbox/{newest['items'][0]['id']}/read", headers=minh_h).status_code == 404
    assert api.get("/api/inbox?limit=1", headers=lan_h).json()["items"][0]["read"] is True
    assert api.post("/api/inbox/read-all", headers=lan_h).json() == {"marked": 2}
    page = api.get("/api/inbox?limit=50", headers=lan_h).json()
    assert page["unread"] == 0 and len(page["items"]) == 8 and all(i["read"] for i in page["items"])
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
    assert own.status_code == 202 and own.json()["audiences"] == ["unit:phu-xuan"]
    status = api.get(own.json()["status_url"], headers=px)
    assert status.status_code == 200 and status.json()["outbox"] == {"pending": 1} and status.json()["reach"] == 1
    counted = []
    listener = lambda *a: counted.append(a[2])  # noqa: E731 - the statements of the second look
    event.listen(app.state.engine, "before_cursor_execute", listener)
    assert api.get(own.json()["status_url"], headers=px).json()["reach"] == 1
    event.remove(app.state.engine, "before_cursor_execute", listener)
    assert counted and not any("UNION" in s.upper() for s in counted)  # the reach count was remembered
    assert api.post("/api/notifications", headers=px, json={**body, "city": True}).status_code == 403
    city = api.post("/api/notifications", headers=dept, json={**body, "city": True})
    assert city.status_code == 202 and city.json()["audiences"] == ["city"]
    assert api.get(city.json()["status_url"], headers=px).status_code == 404  # not a commune's notice
    other = api.post("/api/notifications", headers=px, json={**body, "units": ["kim-long"]})
    assert other.status_code == 403 and other.json()["field"] == "body.units.0"
    assert api.post("/api/notifications", headers=dept, json={**body, "units": ["kim-long"]}).status_code == 202
    unknown = api.post("/api/notifications", headers=dept, json={**body, "units": ["atlantis"]})
    assert unknown.status_code == 422 and unknown.json()["field"] == "body.units.0"
    missing = api.post("/api/notifications", headers=dept, json={**body})
    assert missing.status_code == 422 and missing.json()["field"] == "body.units"
    lan_only = api.post("/api/notifications", headers=dept, json={**body, "title": {"vi": "x"}, "units": ["phu-xuan"]})
    assert lan_only.status_code == 422 and lan_only.json()["field"] == "body.title.en"
