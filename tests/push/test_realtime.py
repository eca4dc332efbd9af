"""The realtime hub at /ws, served by uvicorn and driven with the ``websockets`` client."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from contextlib import ExitStack

import pytest
from sqlmodel import Session
from websockets.exceptions import ConnectionClosed

from core.identity import service
from push.models import UnitFollow
from tests.push.conftest import LiveHost, errors_and_reply, receive, subscribe, wait_until


def _closed_with(ws, timeout: float = 5.0) -> tuple[int | None, str]:
    """Read until the server closes; the close code and reason it sent."""
    deadline = time.monotonic() + timeout
    with pytest.raises(ConnectionClosed):
        while True:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason or ""


def _refused(live: LiveHost, **connect) -> tuple[dict, int | None, str]:
    with live.connect(**connect) as ws:
        message = receive(ws)
        code, reason = _closed_with(ws)
    return message, code, reason


# --- Authentication at the handshake ----------------------------------------------------------------


def test_bearer_header_and_query_token_both_sign_in(live: LiveHost) -> None:
    account = live.account()
    for by_query in (False, True):
        with live.connect(account, query_token=by_query) as ws:
            reply = subscribe(ws, f"user:{account.user_id}")
            assert reply == {"type": "subscribed", "channels": [f"user:{account.user_id}"], "recovered": {}}


def test_anonymous_and_bad_tokens_are_refused_with_4401(live: LiveHost) -> None:
    from websockets.sync.client import connect

    message, code, reason = _refused(live)
    assert message["type"] == "error" and message["code"] == "unauthorized" and "sign in" in message["detail"]
    assert code == 4401 and reason.startswith("unauthorized")

    with connect(live.ws_url + "?token=not-a-token", proxy=None) as bad:
        assert receive(bad)["code"] == "unauthorized"
        assert _closed_with(bad)[0] == 4401

    with connect(live.ws_url, additional_headers={"Authorization": "Basic dXNlcjpwdw=="}, proxy=None) as wrong:
        assert "Bearer" in receive(wrong)["detail"]
        assert _closed_with(wrong)[0] == 4401
    assert live.hub.stats["refused"] == 3 and live.hub.stats["connected"] == 0


def test_signing_out_closes_the_socket_with_4401(live: LiveHost) -> None:
    account = live.account()
    other = live.account()
    with live.connect(account) as ws, live.connect(other) as stays:
        subscribe(ws, "feed")
        subscribe(stays, "feed")
        with Session(live.app.state.engine) as db:
            session_id = service.list_sessions(db, user_id=account.user_id)[0].id
            assert service.revoke_session(db, session_id=session_id, user_id=account.user_id)
        live.run(live.app.state.authenticator.invalidate(account.user_id))
        code, reason = _closed_with(ws)
        assert code == 4401 and "session ended" in reason
        live.publish("feed", {"n": 1})
        assert receive(stays)["data"] == {"n": 1}


# --- Channel rules ----------------------------------------------------------------------------------


def test_own_user_channel_only(live: LiveHost) -> None:
    me, someone = live.account(), live.account()
    with live.connect(me) as ws:
        errors, reply = errors_and_reply(ws, f"user:{me.user_id}", f"user:{someone.user_id}")
        assert reply["channels"] == [f"user:{me.user_id}"]
        assert errors == [{"type": "error", "code": "forbidden_channel", "channel": f"user:{someone.user_id}",
                           "detail": "only your own user channel"}]
        live.publish(f"user:{someone.user_id}", {"secret": True})
        live.publish(f"user:{me.user_id}", {"mine": True})
        assert receive(ws)["data"] == {"mine": True}


def test_resident_units_home_and_followed(live: LiveHost) -> None:
    resident = live.account(unit="phu-xuan")
    with live.connect(resident) as ws:
        errors, reply = errors_and_reply(ws, "unit:phu-xuan", "unit:kim-long", "unit:atlantis")
        assert reply["channels"] == ["unit:phu-xuan"]
        assert [(e["code"], e["channel"]) for e in errors] == [
            ("forbidden_channel", "unit:kim-long"), ("unknown_channel", "unit:atlantis")]
    with Session(live.app.state.engine) as db:
        db.add(UnitFollow(user_id=resident.user_id, unit_id="kim-long"))
        db.commit()
    with live.connect(resident) as ws:
        errors, reply = errors_and_reply(ws, "unit:kim-long", "unit:thuan-hoa")
        assert reply["channels"] == ["unit:kim-long"]
        assert [e["channel"] for e in errors] == ["unit:thuan-hoa"]


def test_officials_units_by_membership_operators_everywhere(live: LiveHost) -> None:
    commune = live.account(role="commune_official", unit="kim-long")
    operator = live.account(role="operator", unit="hue")
    admin = live.account(role="admin", unit="hue")
    with live.connect(commune) as ws:
        errors, reply = errors_and_reply(ws, "unit:kim-long", "unit:phu-xuan")
        assert reply["channels"] == ["unit:kim-long"] and errors[0]["code"] == "forbidden_channel"
    for account in (operator, admin):
        with live.connect(account) as ws:
            errors, reply = errors_and_reply(ws, "unit:kim-long", "unit:phu-xuan", "unit:so-tu-phap")
            assert errors == [] and len(reply["channels"]) == 3


def test_unknown_channels_keep_the_connection_open(live: LiveHost) -> None:
    account = live.account()
    names = ["bogus", "user:abc", "auth:invalidate", "miniapp:festival:nope", "miniapp:nobody:live",
             "feed:extra", "x" * 300, "UNIT:phu-xuan"]
    with live.connect(account) as ws:
        errors, reply = errors_and_reply(ws, *names)
        assert reply["channels"] == []
        assert [e["code"] for e in errors] == ["unknown_channel"] * len(names)
        ws.send(json.dumps({"type": "ping"}))
        assert receive(ws) == {"type": "pong"}


def test_miniapp_channel_decided_by_the_miniapp(live: LiveHost) -> None:
    account = live.account()
    with live.connect(account) as ws:
        errors, reply = errors_and_reply(ws, "miniapp:festival:live", "miniapp:festival:live:backstage")
        assert reply["channels"] == ["miniapp:festival:live"]
        # The prefix covers live:backstage, and the festival's check refuses it.
        assert [(e["code"], e["channel"]) for e in errors] == [("forbidden_channel", "miniapp:festival:live:backstage")]
        event_id = live.publish("miniapp:festival:live", {"stage": "Ngọ Môn", "status": "started"})
        assert receive(ws) == {"type": "event", "channel": "miniapp:festival:live", "id": event_id,
                               "data": {"stage": "Ngọ Môn", "status": "started"}}


def test_publish_refuses_names_that_are_not_channels(live: LiveHost) -> None:
    for name in ("auth:invalidate", "user:me", "feed:x", "miniapp:festival", "", "unit:a:b"):
        with pytest.raises(ValueError):
            live.publish(name, {})
    with pytest.raises(TypeError):
        live.publish("feed", ["not", "a", "dict"])  # type: ignore[arg-type]


# --- Delivery ---------------------------------------------------------------------------------------


def test_every_subscriber_receives_and_unsubscribe_stops_it(live: LiveHost) -> None:
    a, b = live.account(), live.account()
    with live.connect(a) as first, live.connect(b) as second:
        subscribe(first, "feed")
        subscribe(second, "feed")
        event_id = live.publish("feed", {"type": "feed", "title": "Cảnh báo mưa lớn"})
        for ws in (first, second):
            assert receive(ws) == {"type": "event", "channel": "feed", "id": event_id,
                                   "data": {"type": "feed", "title": "Cảnh báo mưa lớn"}}
        first.send(json.dumps({"type": "unsubscribe", "channels": ["feed"]}))
        assert receive(first) == {"type": "unsubscribed", "channels": ["feed"]}
        live.publish("feed", {"n": 2})
        assert receive(second)["data"] == {"n": 2}
        # The pong is queued after anything the publish queued, so no event can hide behind it.
        first.send(json.dumps({"type": "ping"}))
        assert receive(first) == {"type": "pong"}
    wait_until(lambda: not live.hub.channels and not live.hub.connections)


# --- Resume -----------------------------------------------------------------------------------------


def test_resume_replays_what_was_missed(live: LiveHost) -> None:
    account = live.account()
    channel = f"user:{account.user_id}"
    ids = [live.publish(channel, {"type": "inbox", "n": n}) for n in range(1, 4)]
    with live.connect(account) as ws:
        reply = subscribe(ws, channel, "feed", cursor={channel: ids[0]})
        assert reply == {"type": "subscribed", "channels": [channel, "feed"], "recovered": {channel: True}}
        assert [receive(ws)["data"]["n"] for _ in range(2)] == [2, 3]
        live.publish(channel, {"type": "inbox", "n": 4})
        assert receive(ws)["data"]["n"] == 4
        # Subscribing again to a live channel replays nothing: nothing was missed.
        assert subscribe(ws, channel, cursor={channel: ids[0]})["recovered"] == {channel: True}
        ws.send(json.dumps({"type": "ping"}))
        assert receive(ws) == {"type": "pong"}
    with live.connect(account) as ws:  # up to date: complete, nothing to replay
        assert subscribe(ws, channel, cursor={channel: ids[-1]})["recovered"] == {channel: True}


def test_resume_past_the_history_says_incomplete(live: LiveHost) -> None:
    live.app.state.broker.history_size = 5
    account = live.account()
    channel = f"user:{account.user_id}"
    ids = [live.publish(channel, {"n": n}) for n in range(1, 9)]
    with live.connect(account) as ws:
        assert subscribe(ws, channel, cursor={channel: ids[0]})["recovered"] == {channel: False}
        assert [receive(ws)["data"]["n"] for _ in range(5)] == [4, 5, 6, 7, 8]  # what is left, in order
    with live.connect(account) as ws:  # a cursor from before this process started
        assert subscribe(ws, "feed", cursor={"feed": "1-0"})["recovered"] == {"feed": False}
    with live.connect(account) as ws:
        ws.send(json.dumps({"type": "subscribe", "channels": [channel], "cursor": {channel: "yesterday"}}))
        assert receive(ws)["code"] == "invalid_cursor"
        assert receive(ws)["recovered"] == {channel: False}


# --- Heartbeats -------------------------------------------------------------------------------------


def test_heartbeats_and_silent_clients(make_live) -> None:
    live = make_live(heartbeat_seconds=0.2, heartbeat_timeout=0.9)
    account = live.account()
    with live.connect(account) as answering, live.connect(account) as silent:
        assert receive(answering, skip_pings=False) == {"type": "ping"}
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            message = receive(answering, skip_pings=False)
            assert message == {"type": "ping"}
            answering.send(json.dumps({"type": "pong"}))
        code, reason = _closed_with(silent)
        assert code == 4408 and "heartbeat" in reason
        answering.send(json.dumps({"type": "ping"}))  # still open
        assert receive(answering) == {"type": "pong"}
    assert live.hub.stats["heartbeat_timeouts"] == 1


# --- Bad input --------------------------------------------------------------------------------------


def test_malformed_messages_get_errors_and_the_connection_lives_on(live: LiveHost) -> None:
    account = live.account()
    with live.connect(account) as ws:
        cases = [("{not json", "bad_json"), ("[1, 2]", "bad_message"), ('{"type": "dance"}', "unknown_type"),
                 ('{"type": "subscribe", "channels": "feed"}', "bad_message"),
                 ('{"type": "subscribe", "channels": ["feed"], "cursor": ["x"]}', "bad_message"),
                 ('{"type": "unsubscribe"}', "bad_message")]
        for text, code in cases:
            ws.send(text)
            assert receive(ws)["code"] == code, text
        ws.send(b"\x00\x01binary")
        assert receive(ws)["code"] == "bad_message"
        assert subscribe(ws, "feed")["channels"] == ["feed"]


def test_oversized_frame_closes_with_1009_only_that_connection(live: LiveHost) -> None:
    account = live.account()
    with live.connect(account) as big, live.connect(account) as other:
        subscribe(other, "feed")
        big.send(json.dumps({"type": "subscribe", "channels": ["feed"], "pad": "x" * 70_000}))
        code, _ = _closed_with(big)
        assert code == 1009
        live.publish("feed", {"still": "here"})
        assert receive(other)["data"] == {"still": "here"}


# --- Slow consumers ---------------------------------------------------------------------------------


class RawClient:
    """A WebSocket client on a bare socket with a tiny receive buffer, that can stop reading entirely."""

    def __init__(self, live: LiveHost, token: str) -> None:
        port = int(live.url.rsplit(":", 1)[1])
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def send_text(self, text: str) -> None:
        payload, mask = text.encode(), os.urandom(4)
        header = bytes([0x81]) + (bytes([0x80 | len(payload)]) if len(payload) < 126
                                  else bytes([0x80 | 126]) + struct.pack("!H", len(payload)))
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def frames(self, timeout: float = 10.0):
        """Yield (opcode, payload) until the server closes the connection."""
        self.sock.settimeout(timeout)
        while True:
            while True:
                frame = self._parse()
                if frame is None:
                    break
                yield frame
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                return
            self.buffer += chunk

    def _parse(self):
        data = self.buffer
        if len(data) < 2:
            return None
        opcode, length, start = data[0] & 0x0F, data[1] & 0x7F, 2
        if length == 126:
            if len(data) < 4:
                return None
            length, start = struct.unpack("!H", data[2:4])[0], 4
        elif length == 127:
            if len(data) < 10:
                return None
            length, start = struct.unpack("!Q", data[2:10])[0], 10
        if len(data) < start + length:
            return None
        self.buffer = data[start + length:]
        return opcode, data[start:start + length]


def test_a_client_that_never_reads_is_dropped_and_never_slows_the_others(make_live) -> None:
    live = make_live(queue_size=64, close_timeout=20)
    account = live.account()
    slow = RawClient(live, account.token)
    slow.send_text(json.dumps({"type": "subscribe", "channels": ["feed"]}))
    frames = slow.frames()
    assert json.loads(next(frames)[1])["type"] == "subscribed"  # from here on it never reads

    stack = ExitStack()
    # Readers that keep reading: their client buffers every message (max_queue=None) instead of
    # pausing after 16, so only the client that never reads falls behind.
    readers = [stack.enter_context(live.connect(account, max_size=None, max_queue=None)) for _ in range(2)]
    for ws in readers:
        subscribe(ws, "feed")
    count, pad = 400, "x" * 16_000  # 6.4 MB: more than loopback buffers, the transport and the queue
    started = time.monotonic()
    for n in range(count):
        live.publish("feed", {"n": n, "pad": pad})
    for ws in readers:
        assert [receive(ws, 10)["data"]["n"] for _ in range(count)] == list(range(count))
    elapsed = time.monotonic() - started
    wait_until(lambda: live.hub.stats["slow_consumers"] == 1)
    assert len(live.hub.channels["feed"]) == 2
    print(f"\n{count} events of 16 kB to 2 readers in {elapsed:.2f}s beside a client that never reads")

    # When the slow client reads again it finds what fitted in the buffers, then the 1013 close.
    close, received = None, 0
    for opcode, payload in frames:
        if opcode == 0x8:
            close = struct.unpack("!H", payload[:2])[0], payload[2:].decode()
            break
        received += 1
    assert close is not None and close[0] == 1013 and "slow consumer" in close[1]
    assert 0 < received < count
    slow.sock.close()
    with stack:
        for ws in readers:
            ws.send(json.dumps({"type": "ping"}))
            assert receive(ws) == {"type": "pong"}


# --- Redis ------------------------------------------------------------------------------------------


def test_delivery_and_resume_through_redis(settings, redis_url: str) -> None:
    """The same hub on the Redis broker: history in streams, live through pub/sub, cursors across."""
    import uuid

    from core.app import create_app
    from tests.push.conftest import LiveHost, serve

    app = create_app(settings.model_copy(update={"redis_url": redis_url}))
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    app.state.broker.prefix = prefix  # streams of earlier runs (same user ids) stay out of the way
    try:
        with serve(app) as url:
            live = LiveHost(app, url)
            wait_until(lambda: app.state.realtime.loop is not None)
            account = live.account()
            channel = f"user:{account.user_id}"
            ids = [live.publish(channel, {"n": n}) for n in range(3)]
            with live.connect(account) as ws:
                assert subscribe(ws, channel, cursor={channel: ids[0]})["recovered"] == {channel: True}
                assert [receive(ws)["id"] for _ in range(2)] == ids[1:]
                later = live.publish(channel, {"n": 3})
                assert receive(ws) == {"type": "event", "channel": channel, "id": later, "data": {"n": 3}}
    finally:
        import redis

        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()


# --- The hand-driven send ---------------------------------------------------------------------------


async def test_finish_drives_a_hand_started_send_as_a_task_would() -> None:
    import asyncio

    from push.realtime import _finish

    ready, log = asyncio.Event(), []

    async def send() -> None:
        try:
            await asyncio.sleep(0)  # a bare yield first
            await ready.wait()  # then a future, as uvicorn's send does while the socket is full
            log.append("sent")
        finally:
            log.append("done")

    coroutine = send()
    task = asyncio.create_task(_finish(coroutine, coroutine.send(None)))
    await asyncio.sleep(0.01)
    assert not task.done()
    ready.set()
    await task
    assert log == ["sent", "done"]

    ready.clear()
    log.clear()
    coroutine = send()
    task = asyncio.create_task(_finish(coroutine, coroutine.send(None)))
    await asyncio.sleep(0.01)
    task.cancel()  # closing a slow consumer cancels its writer: the send sees the cancellation
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log == ["done"]

    async def broken() -> None:
        gone = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, gone.set_exception, ConnectionResetError("gone"))
        await gone

    coroutine = broken()
    with pytest.raises(ConnectionResetError):
        await _finish(coroutine, coroutine.send(None))


def test_query_tokens_are_kept_out_of_uvicorn_logs(live: LiveHost, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        logging.getLogger("uvicorn.error").info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000",
                                                "/ws?token=eyJhbGciOi.secret.part&x=1")
    assert "secret" not in caplog.text and "/ws?token=[redacted]&x=1" in caplog.text


def test_feed_items_a_miniapp_publishes_arrive_live(live: LiveHost) -> None:
    from core.feed import service as feed

    account = live.account()
    with live.connect(account) as ws:
        assert subscribe(ws, "feed", "unit:phu-xuan")["channels"] == ["feed", "unit:phu-xuan"]
        city = live.run(feed.publish_from_miniapp(
            live.app.state.host, miniapp="festival", kind="news", severity=None, audience="everyone",
            title={"vi": "Khai mạc Festival Huế", "en": "Hue Festival opens"},
            body={"vi": "Tối nay tại Ngọ Môn.", "en": "Tonight at the Noon Gate."}))
        event = receive(ws)
        assert (event["channel"], event["data"]["item_id"], event["data"]["event"]) == ("feed", city, "published")
        targeted = live.run(feed.publish_from_miniapp(
            live.app.state.host, miniapp="festival", kind="news", severity=None, audience="everyone",
            title={"vi": "Đường cấm", "en": "Road closed"}, body={"vi": "Lê Lợi.", "en": "Le Loi street."},
            unit_ids=["phu-xuan"]))
        event = receive(ws)
        assert (event["channel"], event["data"]["item_id"]) == ("unit:phu-xuan", targeted)


# --- What an idle connection holds ------------------------------------------------------------------


def test_an_idle_connection_holds_no_queue_handshake_or_outer_middleware(live: LiveHost) -> None:
    """Served as ``superapp serve`` serves it, an idle connection gets events written straight to its
    socket, even from a client that offers permessage-deflate (the server declines it), and keeps no
    send queue, replay buffer, handshake, asyncio queue or other middleware's frames alive."""
    from push.wsprotocol import LeanWebSocketProtocol

    account = live.account()
    channel = f"user:{account.user_id}"
    first = live.publish(channel, {"n": 0})
    with live.connect(account) as ws:  # the client offers permessage-deflate by default
        assert subscribe(ws, channel, cursor={channel: first})["recovered"] == {channel: True}
        assert ws.protocol.extensions == []
        conn = next(iter(live.hub.by_user[account.user_id]))
        assert conn.direct is not None, "uvicorn's protocol changed: frames go through the ASGI send again"
        wait_until(lambda: conn.replaying is None)  # the server thread ends the subscribe after its reply
        assert (conn.queue, conn.writer) == (None, None)
        protocol = conn.direct.protocol
        assert isinstance(protocol, LeanWebSocketProtocol)
        assert (protocol.request, protocol.response) == (None, None)
        parsed = protocol.conn.parser.gi_frame.f_locals.get("request")  # websockets' parser keeps it
        assert parsed is None or not list(parsed.headers.raw_items())
        assert protocol.queue.empty() and protocol.queue._messages is None
        stack, coroutine = [], conn.task.get_coro()
        while coroutine is not None and hasattr(coroutine, "cr_code"):
            stack.append(coroutine.cr_code.co_qualname)
            coroutine = coroutine.cr_await
        assert "RealtimeSocketMiddleware.__call__" in stack, stack
        assert "Router.__call__" not in stack and "CorrelationIdMiddleware.__call__" not in stack, stack
        for n in range(1, 4):
            live.publish(channel, {"n": n})
        assert [receive(ws)["data"]["n"] for _ in range(3)] == [1, 2, 3]
        ws.send(json.dumps({"type": "ping"}))
        assert receive(ws) == {"type": "pong"}
