"""Two server processes share a real (private) Redis: an event published through B reaches a client of A,
and delivery resumes by itself after Redis is restarted mid-test."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from core.db import make_engine
from tests.browser import serve_in_processes
from tests.conftest import TEST_SECRET
from tests.push.conftest import PrivateRedis, make_account, receive, subscribe


@pytest.fixture
def two_servers(sqlite_url: str, private_redis: PrivateRedis, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two uvicorn processes (``tests.browser.serve_in_processes``: websockets-sansio) on one database and one Redis."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SUPERAPP_")},
           "SUPERAPP_DATABASE_URL": sqlite_url, "SUPERAPP_REDIS_URL": private_redis.url, "SUPERAPP_ENV": "test",
           "SUPERAPP_SECRET_KEY": TEST_SECRET, "SUPERAPP_SCHEDULER_ENABLED": "false",
           "SUPERAPP_PUSH_WORKER_ENABLED": "false", "SUPERAPP_LOG_LEVEL": "WARNING", "SUPERAPP_LOG_JSON": "false"}
    with serve_in_processes("tests.push.publishing_app:create", env, tmp_path) as (a, b):
        yield a, b


def _publish(url: str, channel: str, event: dict) -> httpx.Response:
    return httpx.post(url + "/_test/publish", json={"channel": channel, "event": event}, timeout=5)


def test_event_published_through_b_reaches_a_client_of_a_across_a_redis_restart(
        two_servers: tuple[str, str], sqlite_url: str, private_redis: PrivateRedis) -> None:
    a, b = two_servers
    engine = make_engine(sqlite_url)
    account = make_account(engine, TEST_SECRET)
    engine.dispose()
    channel = f"user:{account.user_id}"
    with connect(a.replace("http", "ws") + "/ws", additional_headers=account.headers, proxy=None) as ws:
        subscribe(ws, channel, "feed")
        published = _publish(b, channel, {"type": "inbox", "title": "Hồ sơ đã được duyệt"})
        assert published.status_code == 200
        event = receive(ws)
        assert event == {"type": "event", "channel": channel, "id": published.json()["id"],
                         "data": {"type": "inbox", "title": "Hồ sơ đã được duyệt"}}

        private_redis.restart()

        # B publishes as soon as Redis answers; A re-subscribes by itself and catches up from the
        # streams, so every event B accepted arrives, once, in order, on the socket that stayed open.
        accepted, deadline = [], time.monotonic() + 20
        while len(accepted) < 3:
            assert time.monotonic() < deadline, "B never published again after the restart"
            if _publish(b, "feed", {"n": len(accepted)}).status_code == 200:
                accepted.append(len(accepted))
            else:
                time.sleep(0.1)
        assert [receive(ws, 15)["data"]["n"] for _ in accepted] == accepted

        # And the other way round, on the user's channel, through the restarted Redis.
        with connect(b.replace("http", "ws") + f"/ws?token={account.token}", proxy=None) as on_b:
            subscribe(on_b, channel)
            sent = _publish(a, channel, {"type": "inbox", "n": 2})
            assert sent.status_code == 200
            assert receive(on_b)["id"] == receive(ws)["id"] == sent.json()["id"]
        ws.send(json.dumps({"type": "ping"}))
        assert receive(ws) == {"type": "pong"}
