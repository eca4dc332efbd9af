"""Live authorisation (issue 15): a WebSocket subscription lasts only as long as the right to read it.

Rights are checked again, on every worker, when the object's visibility changes (a question moved to
another department or made internal), when the caller's roles change or the session ends, and when the
access token expires. Each test runs on SQLite and PostgreSQL, with the in-process broker and with Redis.

A "sentinel" proves that nothing was delivered: it is published on the watcher's own user channel after
the event that must not arrive; one broker connection delivers in publish order, so once the sentinel is
read, the forbidden event would have been read before it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from starlette.websockets import WebSocketDisconnect

from core.app import create_app
from core.identity import passwords
from core.identity.models import Membership
from core.identity.tokens import issue_access_token, read_access_token
from tests.conftest import base_settings
from tests.miniapps.interaction.conftest import (  # noqa: F401 - fixtures used by name
    API,
    Official,
    admin,
    answer,
    ask,
    kim_long,
    nnmt,
    official,
    phu_vang,
    tu_phap,
)


@pytest.fixture(params=["memory", "redis"])
def broker_url(request: pytest.FixtureRequest) -> str | None:
    """No broker URL (in-process) or the test Redis."""
    return None if request.param == "memory" else request.getfixturevalue("redis_url")


@pytest.fixture
def host(database_url: str, broker_url: str | None, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """A development host on SQLite and PostgreSQL, on either broker (its own Redis key prefix)."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    settings = base_settings(database_url=database_url, env="dev", var_dir=tmp_path / "var", redis_url=broker_url)
    app = create_app(settings)
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    if broker_url:
        app.state.broker.prefix = prefix
    with TestClient(app) as client:
        yield client
    if broker_url:
        import redis

        keys = redis.Redis.from_url(broker_url)
        found = list(keys.scan_iter(match=prefix + "*"))
        if found:
            keys.delete(*found)
        keys.close()


def _publish(host: TestClient, channel: str, event: dict[str, Any]) -> str:
    return host.portal.call(host.app.state.realtime.publish, channel, event)


def _subscribe(ws: Any, *channels: str) -> dict:
    ws.send_json({"type": "subscribe", "channels": list(channels)})
    while True:
        frame = ws.receive_json()
        if frame["type"] == "subscribed":
            return frame


def _until_sentinel(ws: Any, marker: str) -> list[dict]:
    """Frames up to and including the sentinel event carrying ``marker`` (pings left out)."""
    frames = []
    while True:
        frame = ws.receive_json()
        if frame["type"] == "ping":
            continue
        frames.append(frame)
        if frame["type"] == "event" and frame["data"].get("sentinel") == marker:
            return frames


def _sentinel(host: TestClient, who: Official) -> str:
    marker = uuid.uuid4().hex
    _publish(host, f"user:{who.user_id}", {"sentinel": marker})
    return marker


def _replies(frames: list[dict]) -> list[dict]:
    return [f for f in frames if f["type"] == "event" and f["data"].get("type") == "reply"]


def _dropped(frames: list[dict], channel: str) -> bool:
    return {"type": "unsubscribed", "channels": [channel], "reason": "forbidden_channel"} in frames


def test_a_transferred_question_stops_streaming_to_the_old_department(host, phu_vang, nnmt, tu_phap) -> None:
    question = ask(host, phu_vang)
    channel = f"miniapp:interaction:question:{question['id']}"
    with host.websocket_connect("/ws", headers=dict(nnmt.headers)) as old, \
            host.websocket_connect("/ws", headers=dict(tu_phap.headers)) as new:
        assert _subscribe(old, channel, f"user:{nnmt.user_id}")["channels"] == [channel, f"user:{nnmt.user_id}"]
        assert _subscribe(new, f"user:{tu_phap.user_id}")["channels"] == [f"user:{tu_phap.user_id}"]
        moved = host.post(f"{API}/questions/{question['id']}/transfer", headers=nnmt.headers,
                          json={"department_id": "so-tu-phap", "note": "Việc hộ tịch, thuộc Sở Tư pháp."})
        assert moved.status_code == 200, moved.text
        # The new department may watch now; the old one has just lost the question.
        assert _subscribe(new, channel)["channels"] == [channel]
        answer(host, tu_phap, question["id"], "Sở Tư pháp trả lời: hồ sơ hộ tịch nộp tại xã.")
        old_frames = _until_sentinel(old, _sentinel(host, nnmt))
        new_frames = _until_sentinel(new, _sentinel(host, tu_phap))
    assert [r["data"]["reply"]["author_unit_id"] for r in _replies(new_frames)] == ["so-tu-phap"]
    assert _replies(old_frames) == [], "the old department still receives the thread it may no longer read"
    assert _dropped(old_frames, channel)


def test_a_question_made_internal_stops_streaming_to_other_communes(host, phu_vang, nnmt, kim_long) -> None:
    question = ask(host, phu_vang)
    answer(host, nnmt, question["id"])  # answered and not internal: every commune and ward may read it
    channel = f"miniapp:interaction:question:{question['id']}"
    with host.websocket_connect("/ws", headers=dict(kim_long.headers)) as other, \
            host.websocket_connect("/ws", headers=dict(phu_vang.headers)) as asker:
        assert _subscribe(other, channel, f"user:{kim_long.user_id}")["channels"][0] == channel
        assert _subscribe(asker, channel, f"user:{phu_vang.user_id}")["channels"][0] == channel
        hidden = host.put(f"{API}/questions/{question['id']}/visibility", headers=nnmt.headers,
                          json={"internal": True})
        assert hidden.status_code == 200 and hidden.json()["internal"] is True, hidden.text
        posted = host.post(f"{API}/questions/{question['id']}/comments", headers=nnmt.headers,
                           json={"body": "Ghi chú nội bộ cho xã Phú Vang."})
        assert posted.status_code == 201, posted.text
        other_frames = _until_sentinel(other, _sentinel(host, kim_long))
        asker_frames = _until_sentinel(asker, _sentinel(host, phu_vang))
    assert [r["data"]["reply"]["body"] for r in _replies(asker_frames)] == ["Ghi chú nội bộ cho xã Phú Vang."]
    assert _replies(other_frames) == [], "another commune still receives an internal thread"
    assert _dropped(other_frames, channel)


def test_a_removed_role_stops_the_unit_channel_before_the_next_event(host, official, admin) -> None:
    """Events published right after the role change never reach the socket, not even while it is re-checked."""
    holder = official("commune_official", "kim-long")
    engine = host.app.state.engine
    with Session(engine) as db:
        membership_id = db.exec(select(Membership.id).where(Membership.user_id == holder.user_id)).one()
    hub = host.app.state.realtime
    with host.websocket_connect("/ws", headers=dict(holder.headers)) as ws:
        assert _subscribe(ws, "unit:kim-long")["channels"] == ["unit:kim-long"]

        async def remove_then_publish() -> None:
            with Session(engine) as db:
                from core.identity import service

                service.remove_membership(db, membership_id=membership_id, actor_id=admin.user_id)
                db.commit()
            await host.app.state.authenticator.invalidate(holder.user_id)
            # In the same turn of the loop: before any re-check could have read the database.
            await hub.publish("unit:kim-long", {"secret": "after the role was taken away"})

        host.portal.call(remove_then_publish)
        frames = []
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                frame = ws.receive_json()
                if frame["type"] != "ping":
                    frames.append(frame)
    assert closed.value.code == 4401
    assert [f for f in frames if f["type"] == "event"] == [], "an event reached a socket whose role was removed"


def _short_token(host: TestClient, who: Official, seconds: int) -> str:
    """A token of ``who``'s session that expires in ``seconds``."""
    secret = host.app.state.settings.secret_key
    claims = read_access_token(who.headers["Authorization"].split(" ", 1)[1], secret=secret)
    return issue_access_token(secret=secret, user_id=who.user_id, session_id=claims.session_id,
                              ttl=timedelta(seconds=seconds))


def test_an_expired_token_closes_the_socket_with_4401(host, kim_long) -> None:
    token = _short_token(host, kim_long, 2)
    with host.websocket_connect("/ws", headers={"Authorization": f"Bearer {token}"}) as ws:
        assert _subscribe(ws, "unit:kim-long")["channels"] == ["unit:kim-long"]
        frames = []
        deadline = time.monotonic() + 30  # a bound on a hung test, not a timing assertion
        with pytest.raises(WebSocketDisconnect) as closed:
            while time.monotonic() < deadline:
                frames.append(ws.receive_json())
    assert closed.value.code == 4401
    assert {"type": "error", "code": "token_expired",
            "detail": "the access token expired; reconnect with a fresh one, or send {\"type\": \"auth\"} "
                      "with it before it expires"} in frames


def test_a_fresh_token_sent_on_the_socket_keeps_it_open(host, kim_long, nnmt) -> None:
    token = _short_token(host, kim_long, 2)
    with host.websocket_connect("/ws", headers={"Authorization": f"Bearer {token}"}) as ws:
        assert _subscribe(ws, "unit:kim-long", f"user:{kim_long.user_id}")["channels"] == [
            "unit:kim-long", f"user:{kim_long.user_id}"]
        ws.send_json({"type": "auth", "token": "not-a-token"})
        refused = ws.receive_json()
        assert refused["type"] == "error" and refused["code"] == "unauthorized"
        ws.send_json({"type": "auth", "token": nnmt.headers["Authorization"].split(" ", 1)[1]})
        other = ws.receive_json()
        assert other["type"] == "error" and other["code"] == "unauthorized" and "another user" in other["detail"]
        ws.send_json({"type": "auth", "token": _short_token(host, kim_long, 600)})
        renewed = ws.receive_json()
        assert renewed["type"] == "authenticated" and renewed["expires_at"] > time.time() + 500
        time.sleep(3)  # past the first token's expiry
        frames = _until_sentinel(ws, _sentinel(host, kim_long))
    assert [f for f in frames if f["type"] == "error"] == []
