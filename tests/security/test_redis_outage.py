"""Redis down (issue 15): degrade, don't fail.

A host on a private redis-server that the test kills and starts again (empty, as after a crash without
persistence), on SQLite and PostgreSQL. While Redis is down: officials still sign in and sensors still
push readings (rate limits count in the process), ``/readyz`` answers 200 "degraded" (a load balancer
keeps the worker), and live events published meanwhile are held; once Redis is back they reach the
subscriber that stayed connected, in order, each once, with ids its cursor can use.

The outage lasts ``SUPERAPP_TEST_OUTAGE_SECONDS`` (default 5 s: the sign-ins, ingests and publishes,
then the rest of the 5 s idle); the issue's target is 30 s, which the same test passes with the variable
set to 30.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from sqlmodel import Session

from core.app import create_app
from core.identity import passwords, service
from miniapps.floodmap.demo import demo_key
from tests.conftest import base_settings
from tests.miniapps.floodmap.conftest import KIM_LONG, load_stations, readings
from tests.push.conftest import (  # noqa: F401 - private_redis is a fixture used by name
    PASSWORD,
    LiveHost,
    PrivateRedis,
    private_redis,
    receive,
    serve,
    subscribe,
    wait_until,
)

OUTAGE_SECONDS = float(os.environ.get("SUPERAPP_TEST_OUTAGE_SECONDS", "5"))
ATTEMPTS = 20
HELD_EVENTS = 40


@pytest.fixture
def live(database_url: str, private_redis: PrivateRedis, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveHost]:
    """A host served by uvicorn on the private Redis, with the demo flood stations."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    app = create_app(base_settings(database_url=database_url, var_dir=tmp_path / "var", env="dev",
                                   redis_url=private_redis.url))
    load_stations(app)
    with serve(app) as url:
        host = LiveHost(app, url)
        wait_until(lambda: app.state.realtime.loop is not None)
        yield host


def _official(live: LiveHost) -> tuple[str, Any]:
    username = f"outage.{uuid.uuid4().hex[:8]}"
    with Session(live.app.state.engine) as db:
        service.create_official(db, username=username, display_name="Trực ban", password=PASSWORD,
                                memberships=[("operator", "hue")])
    return username, live.account(role="operator", unit="hue")


def test_sign_in_ingest_and_live_events_survive_a_redis_outage(live: LiveHost, private_redis: PrivateRedis) -> None:
    username, watcher = _official(live)
    channel, other = f"user:{watcher.user_id}", "unit:kim-long"
    with httpx.Client(base_url=live.url, timeout=30) as http, live.connect(watcher) as ws:
        reply = subscribe(ws, channel, other)
        assert reply["channels"] == [channel, other]
        before = live.publish(channel, {"n": "before"})
        assert receive(ws)["id"] == before

        private_redis.stop()
        down_at = time.monotonic()
        sign_ins = [http.post("/api/auth/login", json={"username": username, "password": PASSWORD}).status_code
                    for _ in range(ATTEMPTS)]
        ingests = [http.post(f"/api/miniapps/floodmap/ingest/{KIM_LONG}", headers={"X-Sensor-Key": demo_key(KIM_LONG)},
                             json=readings(0.5 + n / 100)).status_code for n in range(ATTEMPTS)]
        for n in range(HELD_EVENTS):
            live.publish(channel if n % 2 == 0 else other, {"n": n})
        assert live.app.state.broker.held >= HELD_EVENTS  # and the flood map updates of the ingests
        # Asked once events are surely held: the ingests' own map updates are published by the sensor's
        # response's background task, which may not have run yet when the last ingest answers.
        ready = http.get("/readyz")
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        private_redis.start()  # empty: the streams of before the outage are gone too
        outage = time.monotonic() - down_at

        replayed = [receive(ws, timeout=30) for _ in range(HELD_EVENTS)]
        sentinel = live.publish(channel, {"n": "after"})
        assert receive(ws, timeout=30) == {"type": "event", "channel": channel, "id": sentinel, "data": {"n": "after"}}
        assert http.get("/readyz").json()["status"] == "ready"

    assert outage >= OUTAGE_SECONDS
    assert sign_ins == [200] * ATTEMPTS, sign_ins
    assert ingests == [200] * ATTEMPTS, ingests
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "degraded" and ready.json()["checks"]["database"] == "ok"
    assert "held for replay" in ready.json()["checks"]["broker"]
    # Every event published while Redis was down, once each, in order on its channel (the order across
    # channels is not kept after a reconnect: each channel catches up from its own stream), with a real id.
    assert {e["type"] for e in replayed} == {"event"}
    for name, first in ((channel, 0), (other, 1)):
        assert [e["data"]["n"] for e in replayed if e["channel"] == name] == list(range(first, HELD_EVENTS, 2))
    for name in (channel, other):  # ids are per channel: growing, and past what the client saw before
        ids = [tuple(int(part) for part in e["id"].split("-")) for e in replayed if e["channel"] == name]
        assert ids == sorted(set(ids)) and len(ids) == HELD_EVENTS // 2
    assert min(e["id"] for e in replayed if e["channel"] == channel) > before
    assert live.app.state.broker.held == 0 and live.app.state.broker.dropped == 0


def test_events_held_during_the_outage_can_be_resumed_from_a_cursor(live: LiveHost,
                                                                    private_redis: PrivateRedis) -> None:
    """A client that was away during the outage resumes from its last id once Redis took the held events."""
    _, watcher = _official(live)
    channel = f"user:{watcher.user_id}"
    with live.connect(watcher) as ws:
        subscribe(ws, channel)
        cursor = live.publish(channel, {"n": "seen"})
        assert receive(ws)["id"] == cursor
    private_redis.stop()
    for n in range(5):
        assert live.publish(channel, {"n": n}) == ""  # held: the id comes when Redis takes it
    private_redis.start()
    wait_until(lambda: live.app.state.broker.held == 0, timeout=30)
    with live.connect(watcher) as ws:
        reply = subscribe(ws, channel, cursor={channel: cursor})
        events = [receive(ws) for _ in range(5)]
    # Redis restarted empty, so the stream does not reach back to the cursor: the client is told to reload
    # (recovered false) and still gets every held event, in order.
    assert reply["recovered"] == {channel: False}
    assert [e["data"]["n"] for e in events] == list(range(5))
