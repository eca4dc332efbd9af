"""The issue's "done when": an official's warning post reaches the feed, the inbox and an open
WebSocket of every targeted resident, and the fake FCM server receives the topic message.

Runs on SQLite with the in-process broker and on PostgreSQL with Redis, through a real uvicorn server,
the real firebase-admin code and the loopback fake FCM.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets
from sqlmodel import Session

from core.app import create_app
from core.identity.service import create_official, find_or_create_resident, start_session
from plugins.fakes.firebase import DEFAULT_ACCESS_TOKEN, initialize_test_app, serve_fcm
from push import outbox as outbox_module
from push.fcm import FcmSender
from tests.browser import serve
from tests.conftest import TEST_SECRET, base_settings

PASSWORD = "Hue-2025-strong-pw"


@pytest.fixture(params=["sqlite+in-process", "postgresql+redis"])
def stack(request, tmp_path):
    """(database url, redis url or None) for the two deployments the issue names."""
    if request.param.startswith("sqlite"):
        return request.getfixturevalue("sqlite_url"), None
    return request.getfixturevalue("database_url_pg"), request.getfixturevalue("redis_url")


@pytest.fixture
def database_url_pg(postgres_url):
    """The session's PostgreSQL database, emptied of this test's rows afterwards."""
    from tests.conftest import _truncate

    yield postgres_url
    _truncate(postgres_url)


def _people(app) -> tuple[dict, dict, int]:
    with Session(app.state.engine, expire_on_commit=False) as db:
        resident = find_or_create_resident(db, firebase_uid=None, phone="+84905777001", address=None)
        resident.home_unit_id = "phu-xuan"
        db.add(resident)
        db.commit()
        resident_tokens = start_session(db, secret=TEST_SECRET, user=resident, method="test", client=None, address=None)
        official = create_official(db, username="px.warning", display_name="Cán bộ Phú Xuân", password=PASSWORD,
                                   memberships=[("commune_official", "phu-xuan")])
        official_tokens = start_session(db, secret=TEST_SECRET, user=official, method="test", client=None, address=None)
    return ({"Authorization": f"Bearer {resident_tokens.access_token}"},
            {"Authorization": f"Bearer {official_tokens.access_token}"}, resident.id)


async def _next_event(socket, wanted) -> dict:
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
        if frame["type"] == "event" and wanted(frame):
            return frame


async def test_official_warning_reaches_feed_inbox_socket_and_fcm(stack, monkeypatch) -> None:
    database_url, redis_url = stack
    with serve_fcm(access_token=DEFAULT_ACCESS_TOKEN) as fcm:
        firebase = initialize_test_app()
        monkeypatch.setattr(outbox_module, "sender_from_settings", lambda settings: FcmSender(firebase, owns_app=True))
        app = create_app(base_settings(database_url=database_url, redis_url=redis_url))
        resident_h, official_h, resident_id = _people(app)
        with serve(app) as url:
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                socket_url = url.replace("http", "ws", 1) + "/ws?token=" + resident_h["Authorization"].split()[1]
                async with websockets.connect(socket_url) as socket:
                    await socket.send(json.dumps({"type": "subscribe",
                                                  "channels": ["unit:phu-xuan", f"user:{resident_id}"]}))
                    while json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] != "subscribed":
                        pass
                    posted = await http.post("/api/feed", headers=official_h, json={
                        "author_unit_id": "phu-xuan", "kind": "warning", "severity": "critical",
                        "title": {"vi": "Cảnh báo ngập", "en": "Flood warning"},
                        "body": {"vi": "Nước sông Hương lên nhanh", "en": "The Huong River is rising fast"},
                        "unit_ids": ["phu-xuan"]})
                    assert posted.status_code == 201, posted.text
                    item_id = posted.json()["id"]
                    inbox_event = await _next_event(socket, lambda f: f["data"].get("type") == "inbox")
                    assert inbox_event["channel"] == "unit:phu-xuan"

                feed = (await http.get("/api/feed", headers={**resident_h, "Accept-Language": "en"})).json()
                assert item_id in [i["id"] for i in feed["items"] + feed.get("pinned", [])]
                inbox = (await http.get("/api/inbox", headers={**resident_h, "Accept-Language": "en"})).json()
                assert inbox["items"][0]["title"] == "Flood warning" and inbox["unread"] == 1
                assert inbox_event["data"]["notification_id"] == inbox["items"][0]["notification_id"]

                deadline = time.monotonic() + 10
                while not fcm.requests_for(topic="unit_phu-xuan") and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                [message] = fcm.requests_for(topic="unit_phu-xuan")
                assert message.data["notification_id"] == str(inbox["items"][0]["notification_id"])
                # data message only: the text stays in our API
                assert "Flood" not in json.dumps(message.message)
