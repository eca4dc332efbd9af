"""The issue's "done when", on SQLite with the in-process broker and on PostgreSQL with Redis, through a
real uvicorn server, the real firebase-admin code and the loopback fake FCM:

readings pushed for the demo's Kim Long gauge cross alarm level II; the residents of the affected units
get the warning in the inbox, live on an open WebSocket (map channel and unit channel) and as an FCM
topic message per unit; readings wobbling around the threshold raise it once; a silent sensor shows stale.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import websockets

from core.app import create_app
from miniapps.floodmap import jobs
from miniapps.floodmap.demo import demo_key
from plugins.fakes.firebase import DEFAULT_ACCESS_TOKEN, initialize_test_app, serve_fcm
from push import outbox as outbox_module
from push.fcm import FcmSender
from tests.browser import serve
from tests.conftest import base_settings
from tests.miniapps.floodmap.conftest import (
    INGEST,
    KIM_LONG,
    load_stations,
    make_people,
    readings,
)


@pytest.fixture(params=["sqlite+in-process", "postgresql+redis"])
def stack(request):
    """(database url, redis url or None) for the two deployments."""
    if request.param.startswith("sqlite"):
        return request.getfixturevalue("sqlite_url"), None
    from tests.conftest import _truncate

    url = request.getfixturevalue("postgres_url")
    request.addfinalizer(lambda: _truncate(url))
    return url, request.getfixturevalue("redis_url")


async def _event(socket, seen: list[dict], wanted) -> dict:
    """The first event (already seen, or arriving) that ``wanted`` accepts; every event is kept in ``seen``."""
    while True:
        for frame in seen:
            if wanted(frame):
                return frame
        frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
        if frame["type"] == "event":
            seen.append(frame)


async def test_kim_long_crossing_level_two_warns_its_residents_everywhere(stack, monkeypatch) -> None:
    database_url, redis_url = stack
    with serve_fcm(access_token=DEFAULT_ACCESS_TOKEN) as fcm:
        firebase = initialize_test_app()
        monkeypatch.setattr(outbox_module, "sender_from_settings", lambda settings: FcmSender(firebase, owns_app=True))
        app = create_app(base_settings(database_url=database_url, redis_url=redis_url))
        load_stations(app)
        people = make_people(app)
        with serve(app) as url:
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                token = people.kim_long["Authorization"].split()[1]
                async with websockets.connect(url.replace("http", "ws", 1) + "/ws?token=" + token) as socket:
                    await socket.send(json.dumps({"type": "subscribe",
                                                  "channels": ["miniapp:floodmap:map", "unit:kim-long"]}))
                    while json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] != "subscribed":
                        pass

                    async def push(batch):
                        answer = await http.post(INGEST + KIM_LONG, json=batch,
                                                 headers={"X-Sensor-Key": demo_key(KIM_LONG)})
                        assert answer.status_code == 200, answer.text
                        return answer.json()

                    # the river rises past level I to level II, a reading every two minutes
                    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
                    rising = readings(0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.1, start=start, every=timedelta(minutes=2))
                    for reading in rising:
                        await push(reading)
                    seen: list[dict] = []
                    warning = await _event(socket, seen, lambda f: f["data"].get("type") == "warning"
                                           and f["data"]["warning"]["level"] == 2)
                    assert warning["channel"] == "miniapp:floodmap:map"
                    assert warning["data"]["warning"]["severity"] == "critical"
                    assert "kim-long" in warning["data"]["warning"]["units"]
                    inbox_event = await _event(socket, seen, lambda f: f["channel"] == "unit:kim-long"
                                               and f["data"].get("notification_id")
                                               == warning["data"]["warning"]["notification_id"])
                    assert inbox_event["data"]["severity"] == "critical"

                    # wobbling around 2.0 m: no new warning
                    wobble = readings(1.95, 2.04, 1.96, 2.03, 1.94, 2.05, start=start + timedelta(minutes=16),
                                      every=timedelta(minutes=1))
                    for reading in wobble:
                        await push(reading)

                for who, expected in ((people.kim_long, True), (people.phu_xuan, True), (people.elsewhere, False)):
                    inbox = (await http.get("/api/inbox", headers={**who, "Accept-Language": "en"})).json()
                    titles = [item["title"] for item in inbox["items"]]
                    assert any("Alarm level II" in t for t in titles) is expected, titles

                listed = (await http.get("/api/miniapps/floodmap/warnings")).json()["warnings"]
                assert [w["level"] for w in listed] == [2, 1]  # raised once to each level, wobble or not

                deadline = time.monotonic() + 10
                while not fcm.requests_for(topic="unit_kim-long") and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                topic_messages = fcm.requests_for(topic="unit_kim-long")
                assert [m.data["notification_id"] for m in topic_messages] == [
                    str(warning["data"]["warning"]["notification_id"])]
                assert "Alarm" not in json.dumps(topic_messages[0].message)  # ids only, text stays with us

                # the sensor falls silent: the stale job marks it, the level stays
                later = datetime.now(UTC) + timedelta(hours=2)
                ran = asyncio.run_coroutine_threadsafe(jobs.mark_silent_stations_stale(app.state.host, now=later),
                                                       app.state.realtime.loop)
                went = await asyncio.wrap_future(ran)
                assert went
                layer = (await http.get("/api/miniapps/floodmap/stations.geojson")).json()
                kim_long = next(f["properties"] for f in layer["features"] if f["properties"]["code"] == KIM_LONG)
                assert (kim_long["stale"], kim_long["level"], kim_long["colour"]) == (True, 2, "#757575")
                page = await http.get(f"/m/floodmap/stations/{kim_long['id']}?lang=en")
                assert "stale" in page.text and "Alarm level II" in page.text
