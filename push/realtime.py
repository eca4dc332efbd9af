"""Realtime hub at ``/ws``: authenticated WebSockets, channels, live events, heartbeats and resume.

Core and mini-apps publish with ``await app.state.realtime.publish(channel, event)``; the hub stores
the event in the channel's bounded history (through the broker, so every worker shares it) and every
worker delivers it to its own connections subscribed to the channel.

Live authorisation: a subscription lasts only as long as the right to read the channel. The channel
check (the hub's own for ``user:``/``unit:``/``feed``, the mini-app's registered ``authorize`` for
``miniapp:`` channels) runs again, on every worker, for

- an object whose readers changed: ``await app.state.realtime.rights_changed(channel)`` after the
  change is committed (a question moved to another department or made internal). The notice travels
  on the channel itself, in order with its events, and is not shown to clients;
- a person whose roles or sessions changed (``auth:invalidate``, sent by the identity routes): their
  connections are checked against the token again (closed 4401 if the session ended) and every channel
  again;
- a token that expires: the socket gets ``{"type": "error", "code": "token_expired"}`` and is closed
  with 4401, unless the client sent a fresh token of the same person first (``{"type": "auth"}``).

While a check runs, live events of the channels it covers are held back for those connections and
delivered only if the check allows, so nothing published after the change reaches someone who lost the
right. A refused channel is dropped with ``{"type": "unsubscribed", "channels": [...], "reason":
"forbidden_channel"}``; the connection stays open for the rest.

Channels
    ``user:<id>``             the signed-in user's own channel (new inbox items: ``{"type": "inbox", ...}``)
    ``unit:<unit_id>``        the home unit, followed units (``unit_follow``) and units where the caller
                              holds a membership; operators, admins and roles held in the city: any unit
    ``feed``                  public city-wide feed items (``{"type": "feed", ...}``), anyone signed in
    ``miniapp:<id>:<name>``   decided by the mini-app (``superapp_register_channels``)

Protocol (JSON text frames)
    handshake   ``Authorization: Bearer <access token>``, ``/ws?token=<access token>`` (browsers), or
                the ``superapp_session`` cookie of the shell's own pages (their Origin is checked).
                The hub accepts the upgrade first and then, for a missing or invalid token, sends
                ``{"type": "error", "code": "unauthorized", "detail": ...}`` and closes with 4401:
                a browser sees neither an HTTP status nor a close before accept, but it does see 4401.
    client      ``{"type": "subscribe", "channels": [...], "cursor": {"<channel>": "<last id>"}}``
                ``{"type": "unsubscribe", "channels": [...]}``, ``{"type": "ping"}``, ``{"type": "pong"}``,
                ``{"type": "auth", "token": "<fresh access token of the same person>"}`` (before it expires)
    server      ``{"type": "subscribed", "channels": [...], "recovered": {"<channel>": true|false}}``, then
                the replayed events after each cursor, then live
                ``{"type": "event", "channel": ..., "id": "<ms>-<seq>", "data": {...}}``;
                ``{"type": "unsubscribed", "channels": [...], "reason"?: "forbidden_channel"}`` (the reason
                when the server dropped channels whose right was lost); ``{"type": "authenticated",
                "expires_at": <Unix seconds>}`` for an accepted ``auth``; ``{"type": "ping"}`` every
                ``heartbeat_seconds`` and ``{"type": "pong"}`` for a client ping;
                ``{"type": "error", "code": ..., "detail": ..., "channel"?: ...}`` for bad input
                (``bad_json``, ``bad_message``, ``unknown_type``, ``unknown_channel``,
                ``forbidden_channel``, ``too_many_channels``, ``invalid_cursor``, ``unauthorized`` for a
                refused ``auth``), connection kept; ``token_expired`` just before a 4401 close.
    ``recovered`` is true when every event after the cursor was replayed, false when the history
    no longer reaches back that far (reload over HTTP). Keep the last ``id`` seen per channel.

Close codes: 4401 missing, invalid, revoked or expired token; 4408 no frame from the client for
``heartbeat_timeout`` seconds (answer pings); 1009 a client frame over 64 KiB; 1013 slow consumer
(its send queue of ``queue_size`` messages overflowed); 1012 server restart (uvicorn).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import APIRouter, FastAPI, WebSocket
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, QueryParams
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from core.errors import Problem
from core.identity.authn import INVALIDATION_CHANNEL, SESSION_COOKIE
from core.identity.principal import Principal
from core.limits import MAX_JSON_DEPTH, json_nesting_exceeds
from push.broker import Event, parse_id

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

CLOSE_UNAUTHORIZED = 4401
CLOSE_HEARTBEAT_TIMEOUT = 4408
CLOSE_TOO_BIG = 1009
CLOSE_SLOW_CONSUMER = 1013
CITY_ID = "hue"  # core.units.service.CITY_ID, repeated to keep this import light
CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_]*(:[A-Za-z0-9_.\-]+)*$")
MAX_CHANNEL_LENGTH = 200
ANY_UNIT_ROLES = frozenset({"operator", "admin"})
# Published on a channel by ``rights_changed``: its subscribers are checked again; never sent to clients.
RIGHTS_CHANGED = {"type": "rights_changed"}
RIGHTS_CHANGED_RAW = json.dumps(RIGHTS_CHANGED, separators=(",", ":"))
TOKEN_EXPIRED = ('the access token expired; reconnect with a fresh one, or send {"type": "auth"} '
                 "with it before it expires")


class Outgoing:
    """One text frame for any number of connections: its ASGI message, and its bytes on the wire.

    The bytes are built once, on first use, and then written as they are to every connection that
    negotiated no extension: a server's frames are not masked, so they are the same for everyone.
    """

    __slots__ = ("message", "_wire")

    def __init__(self, text: str) -> None:
        self.message = {"type": "websocket.send", "text": text}
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        """The serialised frame (header and UTF-8 payload)."""
        if self._wire is None:
            self._wire = Frame(Opcode.TEXT, self.message["text"].encode()).serialize(mask=False)
        return self._wire


def _frame(payload: dict[str, Any]) -> Outgoing:
    """One JSON text frame."""
    return Outgoing(json.dumps(payload, separators=(",", ":"), ensure_ascii=False))


PING = _frame({"type": "ping"})
PONG = _frame({"type": "pong"})


def _error(code: str, detail: str, **extra: Any) -> Outgoing:
    return _frame({"type": "error", "code": code, "detail": detail, **extra})


def _event_frame(event: Event) -> Outgoing:
    # Built by concatenation: the JSON of the data is already there, and channel names and ids
    # are restricted to characters that need no escaping.
    return Outgoing(f'{{"type":"event","channel":"{event.channel}","id":"{event.id}","data":{event.raw}}}')


def _close_reason(text: str) -> str:
    """A close reason fits in 123 bytes of UTF-8 (RFC 6455)."""
    encoded = text.encode()
    return text if len(encoded) <= 123 else encoded[:120].decode(errors="ignore") + "..."


class DirectSocket:
    """Writes frames straight to a connection that uvicorn's ``websockets-sansio`` protocol serves.

    What ``websockets.broadcast`` does for its own server: when the socket can take the bytes, write
    the frame to the transport at once, without an ASGI ``send`` coroutine per connection (and the
    middleware wrappers around it). Used only where that is what the ASGI send would do anyway: the
    connection is open, has sent no close, negotiated no extension (a compressed connection needs
    its own encoding of every frame) and its transport is not paused. Otherwise the caller falls
    back to the ASGI send, which waits for the client. Other servers always take the ASGI path.
    """

    __slots__ = ("protocol", "transport", "writable", "websocket")

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.transport = protocol.transport
        self.writable = protocol.writable
        self.websocket = protocol.conn

    @classmethod
    def of(cls, receive: Receive) -> DirectSocket | None:
        """The direct path for the connection whose ASGI ``receive`` this is, if the server offers one."""
        protocol = getattr(receive, "__self__", None)
        if _SANSIO_PROTOCOL is None or not isinstance(protocol, _SANSIO_PROTOCOL):
            return None
        if protocol.conn.extensions or protocol.conn.state is not State.OPEN:
            return None
        return cls(protocol)

    def write(self, frame: Outgoing) -> bool:
        """Write ``frame`` now and return True, or return False when the ASGI send must do it."""
        if (self.writable.is_set() and self.websocket.state is State.OPEN and not self.protocol.close_sent
                and not self.protocol.disconnected):
            self.transport.write(frame.wire)
            return True
        return False


def _sansio_protocol() -> type | None:
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:  # another ASGI server: every frame goes through the ASGI send
        return None
    return WebSocketsSansIOProtocol


_SANSIO_PROTOCOL = _sansio_protocol()


class Connection:
    """One WebSocket: who is on it, its channels and, only while it waits for the client, a send queue.

    A frame for an idle connection is written on the spot, straight to the transport when the server
    allows it (``DirectSocket``), else by running the ASGI send to completion without a task, as it
    does whenever the socket can take the bytes. Only when the server has to wait for the client (its
    socket buffer is full) does a writer task take over, and frames queue behind it up to
    ``queue_size``. So a fan-out to ten thousand connections allocates no task, handle, future or
    coroutine per connection, and an idle connection holds no task, queue or replay buffer at all:
    those are created when needed and dropped when done (memory per idle connection is what limits
    how many a worker holds).
    """

    __slots__ = ("hub", "ws", "send", "direct", "principal", "token", "channels", "replaying", "queue",
                 "room", "last_seen", "closed", "writer", "task", "closing", "aborted", "expiry")

    def __init__(self, hub: RealtimeHub, ws: WebSocket, principal: Principal, token: str,
                 direct: DirectSocket | None = None) -> None:
        self.hub = hub
        self.ws = ws
        self.send = ws.send
        self.direct = direct
        self.principal = principal
        self.token = token
        self.channels: set[str] = set()
        # Channels being replayed: live events wait here so they follow the replay, in order.
        self.replaying: dict[str, list[tuple[str, Outgoing]]] | None = None
        # Frames waiting behind a blocked write (created with the writer task, dropped with it).
        self.queue: deque[dict[str, Any]] | None = None
        self.room: asyncio.Future[None] | None = None
        self.last_seen = time.monotonic()
        self.closed = False
        self.writer: asyncio.Task[None] | None = None
        self.task: asyncio.Task[Any] | None = None
        self.closing: asyncio.Task[None] | None = None
        self.aborted = False
        # Closes the connection when its token expires (a timer on the loop, not a task).
        self.expiry: asyncio.TimerHandle | None = None

    def offer(self, frame: Outgoing) -> None:
        """Send ``frame`` now, or queue it behind a waiting write; a full queue closes a slow consumer."""
        if self.closed:
            return
        if self.writer is None:
            if self.direct is None or not self.direct.write(frame):
                self._send_now(frame.message)
        elif len(self.queue) >= self.hub.queue_size:
            self.hub.close(self, CLOSE_SLOW_CONSUMER, "slow consumer: send queue overflowed")
        else:
            self.queue.append(frame.message)

    def _send_now(self, message: dict[str, Any]) -> None:
        coroutine = self.send(message)
        if self.direct is None and asyncio.current_task() is None:
            # Called from a loop callback (the fan-out) on a server whose send may need a task's
            # context (anyio's checkpoint in Starlette's test client raises outside one): a writer
            # task sends it instead of driving it by hand.
            self.queue = deque()
            self.writer = self.hub.loop.create_task(self._write(coroutine, None))
            return
        try:
            waiting = coroutine.send(None)
        except StopIteration:
            return  # written: the usual case
        except Exception:  # the client went away; the reader sees the disconnect and cleans up
            self.closed = True
            self.hub.forget(self)
            return
        # The server waits for the client to read: a task finishes this frame, then the queue.
        self.queue = deque()
        self.writer = self.hub.loop.create_task(self._write(coroutine, waiting))

    def deliver(self, channel: str, event_id: str, frame: Outgoing) -> None:
        """A live event: sent, or held back while its channel's replay is being sent."""
        held = self.replaying.get(channel) if self.replaying else None
        if held is None:
            self.offer(frame)
        elif len(held) >= self.hub.queue_size:
            self.hub.close(self, CLOSE_SLOW_CONSUMER, "slow consumer: send queue overflowed")
        else:
            held.append((event_id, frame))

    async def put(self, frame: Outgoing) -> None:
        """Send ``frame``, waiting for room instead of overflowing (replays are bursts we chose)."""
        while not self.closed and self.writer is not None and len(self.queue) >= self.hub.queue_size // 2:
            if self.room is None or self.room.done():
                self.room = asyncio.get_running_loop().create_future()
            await self.room
        self.offer(frame)

    async def _write(self, coroutine: Any, waiting: Any) -> None:
        """Finish a send that had to wait, then send what queued up meanwhile, in order."""
        queue, send, half = self.queue, self.send, self.hub.queue_size // 2
        try:
            await _finish(coroutine, waiting)
            while queue:
                await send(queue.popleft())
                room = self.room
                if room is not None and not room.done() and len(queue) < half:
                    room.set_result(None)
        except asyncio.CancelledError:
            raise
        except Exception:  # the client went away; the reader sees the disconnect and cleans up
            self.closed = True
            self.hub.forget(self)
        finally:
            if self.writer is asyncio.current_task():
                self.writer = self.queue = None
            room, self.room = self.room, None
            if room is not None and not room.done():
                room.set_result(None)  # a replay waiting for room must see the end too


async def _finish(coroutine: Any, waiting: Any) -> None:
    """Drive a coroutine started by hand (``coroutine.send(None)``) that is now suspended on ``waiting``.

    What a task does for a coroutine it runs, step by step: wait for the future it yielded (or give
    the loop a turn for a bare yield), then resume it; if this task is cancelled meanwhile, the
    cancelled future resumes it with the cancellation.
    """
    while True:
        try:
            if waiting is None:
                await asyncio.sleep(0)
            elif asyncio.isfuture(waiting):
                waiting._asyncio_future_blocking = False  # as a task does before it waits on a yielded future
                await waiting
            else:
                raise RuntimeError(f"a send yielded {waiting!r}, which asyncio cannot wait for")
        except asyncio.CancelledError:
            if waiting is None or not waiting.done():  # cancelled while it only yielded a turn
                try:
                    coroutine.throw(asyncio.CancelledError())
                except StopIteration:
                    pass
                raise
        except Exception:
            if waiting is None or not waiting.done():
                raise
            # The future failed: resuming the coroutine raises that inside it, where it belongs.
        try:
            waiting = coroutine.send(None)
        except StopIteration:
            return


class MiniAppChannelRule:
    """A mini-app's channel prefix and who may subscribe (from ``superapp_register_channels``)."""

    __slots__ = ("miniapp", "prefix", "authorize", "wants_host")

    def __init__(self, miniapp: str, prefix: str, authorize: Callable[..., Any], wants_host: bool = False) -> None:
        self.miniapp = miniapp
        self.prefix = prefix
        self.authorize = authorize
        self.wants_host = wants_host

    def matches(self, name: str) -> bool:
        """``name`` is the prefix itself or continues it after a colon."""
        return name == self.prefix or name.startswith(self.prefix + ":")


class RealtimeHub:
    """The WebSocket side of delivery for one worker; shared state travels through the broker."""

    def __init__(self, *, broker: Any, authenticator: Any, engine: Any, miniapps: Iterable[Any] = (),
                 heartbeat_seconds: float = 25.0, heartbeat_timeout: float | None = None,
                 queue_size: int = 256, max_frame_bytes: int = 64 * 1024, max_channels: int = 100,
                 subscribe_timeout: float = 2.0, close_timeout: float = 30.0,
                 authorize_timeout: float = 5.0, host_of: Callable[[], Any] = lambda: None) -> None:
        self.broker = broker
        # The HostContext handed to channel checks that ask for it (it is built after the hub).
        self.host_of = host_of
        self.authenticator = authenticator
        self.engine = engine
        self.heartbeat_seconds = heartbeat_seconds
        # None: three missed heartbeats. Any frame from the client counts, not only pongs.
        self.heartbeat_timeout = heartbeat_timeout
        self.queue_size = queue_size
        self.max_frame_bytes = max_frame_bytes
        self.max_channels = max_channels
        self.subscribe_timeout = subscribe_timeout
        self.close_timeout = close_timeout
        self.authorize_timeout = authorize_timeout
        self.rules: dict[str, list[MiniAppChannelRule]] = {}
        for miniapp in miniapps:
            rules = [MiniAppChannelRule(miniapp.id, c.prefix, c.authorize, getattr(c, "wants_host", False))
                     for c in getattr(miniapp, "channels", ())]
            # Longest prefix first, so a narrower registration decides for the names it covers.
            self.rules[miniapp.id] = sorted(rules, key=lambda r: len(r.prefix), reverse=True)
        self.connections: set[Connection] = set()
        self.channels: dict[str, set[Connection]] = {}
        self.by_user: dict[int, set[Connection]] = {}
        self.stats = {"connected": 0, "refused": 0, "slow_consumers": 0, "heartbeat_timeouts": 0, "events": 0}
        self._subscription: Any = None
        self._units: frozenset[str] = frozenset()
        self._units_loaded = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()
        # Counts the rights changes this worker heard of: a subscribe that saw one while it checked checks again.
        self.rights_epoch = 0
        self.loop: asyncio.AbstractEventLoop | None = None  # the serving loop, for callers in other threads

    # --- publishing -------------------------------------------------------------------------------

    async def publish(self, channel: str, event: dict[str, Any]) -> str:
        """Deliver ``event`` to the channel's subscribers on every worker and keep it for resume; returns its id."""
        if not _publishable(channel):
            raise ValueError(f"not a realtime channel: {channel!r} (user:<id>, unit:<id>, feed, miniapp:<id>:<name>)")
        if not isinstance(event, dict):
            raise TypeError(f"a realtime event must be a dict, not {type(event).__name__}")
        return await self.broker.publish(channel, event)

    async def rights_changed(self, *channels: str) -> None:
        """Who may read these channels changed: every worker checks its subscribers again before the next event.

        Call it after the change is committed (for instance when a question moves to another department
        or becomes internal). The check is the channel's own (for a mini-app, the ``authorize`` it
        registered), so a mini-app names the object and never re-implements who may read it.
        """
        for channel in channels:
            if not _publishable(channel):
                raise ValueError(f"not a realtime channel: {channel!r}")
            await self.broker.publish(channel, RIGHTS_CHANGED)

    # --- background loops -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the broker subscription the hub fans in from (idempotent)."""
        self.loop = asyncio.get_running_loop()
        if self._subscription is None:
            self._subscription = self.broker.subscription(self._dispatch)
            # Sign-outs and role changes: connections of that user are checked again.
            await self._settle(self._subscription.add(INVALIDATION_CHANNEL))

    async def run_fan_in(self) -> None:
        """Background loop: keeps the broker subscription open until shutdown."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            subscription, self._subscription = self._subscription, None
            if subscription is not None:
                await subscription.close()

    async def run_heartbeats(self) -> None:
        """Background loop: ping every connection, close those silent for too long."""
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            timeout = self.heartbeat_timeout or 3 * self.heartbeat_seconds
            now = time.monotonic()
            for conn in tuple(self.connections):
                if now - conn.last_seen > timeout:
                    self.stats["heartbeat_timeouts"] += 1
                    self.close(conn, CLOSE_HEARTBEAT_TIMEOUT, "heartbeat timeout: answer pings with a pong")
                else:
                    conn.offer(PING)

    def _dispatch(self, event: Event) -> None:
        """The broker's callback: fan the event out on the next turn of the loop, so the publisher
        (in-process, the caller of ``publish``) never waits for ten thousand writes."""
        if event.channel == INVALIDATION_CHANNEL:
            self._invalidated(event)
        elif event.channel in self.channels:
            if event.raw == RIGHTS_CHANGED_RAW:
                # At once, not on the next turn: the events after it must already find the channel held.
                self._rights_changed(event.channel)
            else:
                self.loop.call_soon(self._fan_out, event)

    def _fan_out(self, event: Event) -> None:
        """Write one event to this worker's subscribed connections (never waits for any of them)."""
        conns = self.channels.get(event.channel)
        if not conns:
            return
        self.stats["events"] += 1
        # Serialised once for every connection: the same bytes go to each of them.
        frame = _event_frame(event)
        channel, event_id = event.channel, event.id
        for conn in tuple(conns):
            conn.deliver(channel, event_id, frame)

    # --- connections ------------------------------------------------------------------------------

    async def serve(self, ws: WebSocket, receive: Receive | None = None) -> None:
        """Run one WebSocket from handshake to close.

        ``receive`` is the server's own ASGI receive when the caller has it: messages are read from it
        without Starlette's bookkeeping, and it tells whether frames may be written directly.
        """
        token, problem = _token_of(ws)
        await ws.accept()
        principal = None
        if token is not None:
            try:
                principal = await self.authenticator.principal_for_token(token)
            except Problem as exc:
                problem = exc.detail
        if principal is None or not principal.is_authenticated:
            self.stats["refused"] += 1
            await _refuse(ws, problem or "this access token does not belong to a signed-in user")
            return
        await self.start()
        conn = Connection(self, ws, principal, token, DirectSocket.of(receive) if receive is not None else None)
        conn.task = asyncio.current_task()
        self._expire_at(conn, self.authenticator.token_expires_at(token))
        self.connections.add(conn)
        self.by_user.setdefault(principal.user_id, set()).add(conn)
        self.stats["connected"] += 1
        try:
            await self._read(conn, receive or ws.receive)
        except asyncio.CancelledError:
            if not conn.aborted:
                raise
            asyncio.current_task().uncancel()  # we cancelled ourselves to give up on a stuck client
        except Exception:  # a bug here must end this connection only, never the others
            log.exception("realtime connection failed")
        finally:
            self.forget(conn)
            conn.closed = True
            if conn.writer is not None:
                conn.writer.cancel()
            if conn.closing is not None and conn.closing is not asyncio.current_task() and not conn.aborted:
                await asyncio.gather(conn.closing, return_exceptions=True)

    async def _read(self, conn: Connection, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            conn.last_seen = time.monotonic()
            text = message.get("text")
            if text is None:
                data = message.get("bytes") or b""
                if len(data) > self.max_frame_bytes:
                    self.close(conn, CLOSE_TOO_BIG, f"frame over {self.max_frame_bytes} bytes")
                    return
                conn.offer(_error("bad_message", "send JSON in text frames"))
                continue
            if len(text) > self.max_frame_bytes // 4 and len(text.encode()) > self.max_frame_bytes:
                self.close(conn, CLOSE_TOO_BIG, f"frame over {self.max_frame_bytes} bytes")
                return
            await self._handle(conn, text)

    async def _handle(self, conn: Connection, text: str) -> None:
        if json_nesting_exceeds(text):  # checked before parsing: the parser would recurse to a RecursionError
            conn.offer(_error("bad_json", f"not JSON we read: nested more than {MAX_JSON_DEPTH} levels deep"))
            return
        try:
            message = json.loads(text)
        except ValueError as exc:
            conn.offer(_error("bad_json", f"not JSON: {exc}"))
            return
        if not isinstance(message, dict):
            conn.offer(_error("bad_message", "send a JSON object with a 'type'"))
            return
        kind = message.get("type")
        if kind == "subscribe":
            await self._subscribe(conn, message)
        elif kind == "unsubscribe":
            self._unsubscribe(conn, message)
        elif kind == "ping":
            conn.offer(PONG)
        elif kind == "auth":
            await self._reauthenticate(conn, message)
        elif kind == "pong":
            pass
        else:
            conn.offer(_error("unknown_type", f"unknown message type {kind!r}; use subscribe, unsubscribe, "
                                              "auth, ping or pong"))

    async def _subscribe(self, conn: Connection, message: dict[str, Any]) -> None:
        channels = message.get("channels")
        cursors = message.get("cursor") or {}
        if (not isinstance(channels, list) or not all(isinstance(c, str) for c in channels)
                or len(channels) > self.max_channels):
            conn.offer(_error("bad_message", f"'channels' must be a list of at most {self.max_channels} names"))
            return
        if not isinstance(cursors, dict):
            conn.offer(_error("bad_message", "'cursor' must map channel names to event ids"))
            return
        context: dict[str, Any] = {}
        accepted: list[str] = []
        rights_epoch = self.rights_epoch
        for channel in dict.fromkeys(channels):
            verdict = await self._authorize(conn.principal, channel, context)
            if verdict is not None:
                code, detail = verdict
                conn.offer(_error(code, detail, channel=channel))
            elif channel not in conn.channels and len(conn.channels) >= self.max_channels:
                conn.offer(_error("too_many_channels", f"at most {self.max_channels} channels per connection",
                                  channel=channel))
            else:
                accepted.append(channel)
        if conn.closed:
            return
        new = [c for c in accepted if c not in conn.channels]
        for channel in new:
            conn.channels.add(channel)
            if conn.replaying is None:
                conn.replaying = {}
            conn.replaying[channel] = []
            self.channels.setdefault(channel, set()).add(conn)
        if new and self._subscription is not None:
            await self._settle(self._subscription.add(*new))
        if self.rights_epoch != rights_epoch:
            # Rights changed while we checked, before these channels were registered for the re-check:
            # check them again (later changes find them registered, and held, like any other).
            for channel in new:
                if await self._verdict(conn.principal, channel, {}) is not None:
                    self._detach(conn, channel)
                    conn.offer(_error("forbidden_channel", "the right to this channel changed", channel=channel))
            new = [c for c in new if c in conn.channels]
            accepted = [c for c in accepted if c in conn.channels]
        recovered: dict[str, bool] = {}
        replays: dict[str, list[Event]] = {}
        for channel in accepted:
            cursor = cursors.get(channel)
            if cursor is None:
                continue
            if channel not in new:
                recovered[channel] = True  # already live on this connection: nothing was missed
                continue
            try:
                history = await self.broker.history(channel, cursor)
            except ValueError:
                conn.offer(_error("invalid_cursor", "a cursor is an event id '<ms>-<seq>'", channel=channel))
                recovered[channel] = False
                continue
            except Exception:
                log.warning("could not read the history of %s", channel, exc_info=True)
                recovered[channel] = False
                continue
            recovered[channel] = history.complete
            replays[channel] = [e for e in history.events if e.raw != RIGHTS_CHANGED_RAW]
        conn.offer(_frame({"type": "subscribed", "channels": accepted, "recovered": recovered}))
        for channel in new:
            events = replays.get(channel, ())
            for event in events:
                if channel not in conn.channels:
                    break  # its right was withdrawn during the replay
                await conn.put(_event_frame(event))
            held = _stop_holding(conn, channel)
            if conn.closed:
                return
            threshold = events[-1].id if events else cursors.get(channel)
            try:
                floor = parse_id(threshold) if isinstance(threshold, str) else None
            except ValueError:
                floor = None
            for event_id, frame in held:
                if floor is None or parse_id(event_id) > floor:
                    conn.offer(frame)

    def _unsubscribe(self, conn: Connection, message: dict[str, Any]) -> None:
        channels = message.get("channels")
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            conn.offer(_error("bad_message", "'channels' must be a list of names"))
            return
        for channel in channels:
            self._detach(conn, channel)
        conn.offer(_frame({"type": "unsubscribed", "channels": list(dict.fromkeys(channels))}))

    def _detach(self, conn: Connection, channel: str) -> None:
        if channel not in conn.channels:
            return
        conn.channels.discard(channel)
        _stop_holding(conn, channel)
        conns = self.channels.get(channel)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.channels[channel]
                if self._subscription is not None:
                    self._subscription.remove(channel)

    def forget(self, conn: Connection) -> None:
        """Detach ``conn`` from every channel and index (idempotent)."""
        for channel in tuple(conn.channels):
            self._detach(conn, channel)
        if conn.expiry is not None:
            conn.expiry.cancel()
            conn.expiry = None
        self.connections.discard(conn)
        mine = self.by_user.get(conn.principal.user_id)
        if mine is not None:
            mine.discard(conn)
            if not mine:
                del self.by_user[conn.principal.user_id]

    def close(self, conn: Connection, code: int, reason: str) -> None:
        """Close ``conn`` with ``code`` without waiting: it stops receiving events at once."""
        if conn.closed:
            return
        conn.closed = True
        if code == CLOSE_SLOW_CONSUMER:
            self.stats["slow_consumers"] += 1
            log.info("realtime: closing a slow consumer", extra={"user_id": conn.principal.user_id})
        self.forget(conn)
        if conn.writer is not None:
            conn.writer.cancel()
        conn.closing = self._spawn(self._send_close(conn, code, _close_reason(reason)))

    async def _send_close(self, conn: Connection, code: int, reason: str) -> None:
        try:
            # The close frame waits behind what the client has not read yet; a client that never
            # reads again is abandoned after ``close_timeout``.
            await asyncio.wait_for(conn.ws.close(code, reason), self.close_timeout)
        except TimeoutError:
            if conn.task is not None and not conn.task.done():
                conn.aborted = True
                conn.task.cancel()
        except Exception:  # already disconnected
            pass

    def _spawn(self, coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _settle(self, pending: Awaitable[None]) -> None:
        """Wait (a bounded time) until the broker delivers a new subscription live."""
        try:
            await asyncio.wait_for(asyncio.shield(pending), self.subscribe_timeout)
        except TimeoutError:
            log.warning("realtime: broker subscription not confirmed yet; continuing (it is retried)")

    def _invalidated(self, event: Event) -> None:
        try:
            user_id = int(event.data["user_id"])
        except (KeyError, TypeError, ValueError):
            return
        conns = self.by_user.get(user_id)
        self.rights_epoch += 1
        if conns:
            # The authenticator's own listener may not have run yet; its cache must not answer for it.
            self.authenticator.forget(user_id)
            for conn in tuple(conns):
                # Held at once: what is published after the change waits for the verdict.
                held = [channel for channel in tuple(conn.channels) if _hold(conn, channel)]
                self._spawn(self._recheck(conn, held))

    async def _recheck(self, conn: Connection, held: Iterable[str] = ()) -> None:
        """After a sign-out or role change: close if the token is no longer valid, else re-authorize."""
        try:
            try:
                principal = await self.authenticator.principal_for_token(conn.token)
            except Problem as exc:
                self.close(conn, CLOSE_UNAUTHORIZED, f"session ended: {exc.detail}")
                return
            conn.principal = principal
            dropped = []
            context: dict[str, Any] = {}
            for channel in tuple(conn.channels):
                if await self._verdict(principal, channel, context) is not None:
                    self._detach(conn, channel)
                    dropped.append(channel)
            if dropped:
                conn.offer(_frame({"type": "unsubscribed", "channels": dropped, "reason": "forbidden_channel"}))
        finally:
            for channel in held:
                _release(conn, channel)

    def _rights_changed(self, channel: str) -> None:
        """Hold the channel's live events for this worker's subscribers and check each of them again."""
        conns = self.channels.get(channel)
        self.rights_epoch += 1
        if conns:
            targets = [(conn, _hold(conn, channel)) for conn in tuple(conns)]
            self._spawn(self._recheck_channel(channel, targets))

    async def _recheck_channel(self, channel: str, targets: list[tuple[Connection, bool]]) -> None:
        """Drop ``channel`` from the connections no longer allowed; release what was held for the others."""
        verdicts: dict[int | None, tuple[str, str] | None] = {}  # one check per person, however many tabs
        for conn, held in targets:
            try:
                if conn.closed or channel not in conn.channels:
                    continue
                user_id = conn.principal.user_id
                if user_id not in verdicts:
                    verdicts[user_id] = await self._verdict(conn.principal, channel, {})
                if verdicts[user_id] is not None and channel in conn.channels:
                    self._detach(conn, channel)
                    conn.offer(_frame({"type": "unsubscribed", "channels": [channel], "reason": "forbidden_channel"}))
            finally:
                if held:
                    _release(conn, channel)

    async def _verdict(self, principal: Principal, channel: str, context: dict[str, Any]) -> tuple[str, str] | None:
        """``_authorize`` for a check after the fact: a check that fails refuses (fail closed)."""
        try:
            return await self._authorize(principal, channel, context)
        except Exception:
            log.exception("realtime: checking %s again failed; dropping it", channel)
            return "forbidden_channel", "the check failed"

    # --- tokens -------------------------------------------------------------------------------------

    def _expire_at(self, conn: Connection, expires_at: float | None) -> None:
        """Close ``conn`` (4401) when its token expires, at Unix time ``expires_at``."""
        if conn.expiry is not None:
            conn.expiry.cancel()
            conn.expiry = None
        if expires_at is not None:
            loop = asyncio.get_running_loop()
            conn.expiry = loop.call_at(loop.time() + max(0.0, expires_at - time.time()), self._expired, conn)

    def _expired(self, conn: Connection) -> None:
        conn.expiry = None
        if conn.closed:
            return
        for channel in tuple(conn.channels):  # nothing more reaches it from now on
            self._detach(conn, channel)
        conn.offer(_error("token_expired", TOKEN_EXPIRED))
        self._spawn(self._close_after_writes(conn, CLOSE_UNAUTHORIZED, "access token expired"))

    async def _close_after_writes(self, conn: Connection, code: int, reason: str) -> None:
        """Close once what was offered is written (``close`` drops unwritten frames), within ``close_timeout``."""
        writer = conn.writer
        if writer is not None:
            await asyncio.wait({writer}, timeout=self.close_timeout)
        self.close(conn, code, reason)

    async def _reauthenticate(self, conn: Connection, message: dict[str, Any]) -> None:
        """``{"type": "auth", "token": ...}``: carry on with a fresh token of the same person."""
        token = message.get("token")
        if not isinstance(token, str) or not token.strip():
            conn.offer(_error("bad_message", "'token' must be an access token"))
            return
        try:
            principal = await self.authenticator.principal_for_token(token.strip())
        except Problem as exc:
            conn.offer(_error("unauthorized", f"token refused: {exc.detail}; the current one is kept"))
            return
        if principal.user_id != conn.principal.user_id:
            conn.offer(_error("unauthorized", "that token belongs to another user; open a new connection for them"))
            return
        expires_at = self.authenticator.token_expires_at(token.strip())
        if conn.closed:
            return
        conn.token = token.strip()
        self._expire_at(conn, expires_at)
        conn.offer(_frame({"type": "authenticated", "expires_at": expires_at}))
        # The new session may hold other roles than the old one: every channel is checked again.
        await self._recheck(conn, [channel for channel in tuple(conn.channels) if _hold(conn, channel)])

    # --- channel rules ----------------------------------------------------------------------------

    async def _authorize(self, principal: Principal, channel: str,
                         context: dict[str, Any]) -> tuple[str, str] | None:
        """None when ``principal`` may subscribe to ``channel``, else (error code, detail)."""
        if len(channel) > MAX_CHANNEL_LENGTH or not CHANNEL_NAME.match(channel):
            return "unknown_channel", "channels are user:<id>, unit:<id>, feed or miniapp:<id>:<name>"
        kind, _, rest = channel.partition(":")
        if kind == "feed" and not rest:
            return None
        if kind == "user" and rest.isdigit():
            if int(rest) == principal.user_id:
                return None
            return "forbidden_channel", "only your own user channel"
        if kind == "unit" and rest and ":" not in rest:
            if rest not in await self._known_units():
                return "unknown_channel", f"no unit {rest!r}"
            if self._unit_by_role(principal, rest):
                return None
            if "follows" not in context:
                context["follows"] = await run_in_threadpool(self._follows, principal.user_id)
            if rest in context["follows"]:
                return None
            return "forbidden_channel", "units you live in, follow or hold a role in"
        if kind == "miniapp":
            miniapp_id, _, name = rest.partition(":")
            rule = next((r for r in self.rules.get(miniapp_id, ()) if r.matches(name)), None)
            if rule is None:
                return "unknown_channel", f"mini-app {miniapp_id!r} has no channel {name!r}"
            if await self._ask_miniapp(rule, principal, name):
                return None
            return "forbidden_channel", f"mini-app {miniapp_id!r} refused this channel"
        return "unknown_channel", "channels are user:<id>, unit:<id>, feed or miniapp:<id>:<name>"

    @staticmethod
    def _unit_by_role(principal: Principal, unit_id: str) -> bool:
        if principal.roles & ANY_UNIT_ROLES or principal.home_unit_id == unit_id:
            return True
        return any(m.unit_id in (unit_id, CITY_ID) for m in principal.memberships)

    def _follows(self, user_id: int) -> frozenset[str]:
        from push.models import UnitFollow

        with Session(self.engine) as db:
            return frozenset(db.exec(select(UnitFollow.unit_id).where(UnitFollow.user_id == user_id)))

    async def _known_units(self) -> frozenset[str]:
        # Units are reference data: read once, and again at most once a minute.
        if time.monotonic() - self._units_loaded > 60:
            self._units = await run_in_threadpool(self._load_units)
            self._units_loaded = time.monotonic()
        return self._units

    def _load_units(self) -> frozenset[str]:
        from core.units.models import OrgUnit

        with Session(self.engine) as db:
            return frozenset(db.exec(select(OrgUnit.id)))

    async def _ask_miniapp(self, rule: MiniAppChannelRule, principal: Principal, name: str) -> bool:
        """The mini-app's verdict; an error or a slow answer counts as a refusal (and is logged)."""
        arguments = (principal, name, self.host_of()) if rule.wants_host else (principal, name)
        try:
            if inspect.iscoroutinefunction(rule.authorize):
                result = rule.authorize(*arguments)
            else:  # plain functions may touch the database: keep them off the event loop
                result = await run_in_threadpool(rule.authorize, *arguments)
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, self.authorize_timeout)
        except Exception:
            log.exception("mini-app '%s': channel authorization failed", rule.miniapp)
            return False
        return result is True


class _Held(list):  # type: ignore[type-arg]
    """Live events held back while a channel's right is checked again; ``checks`` still running."""

    __slots__ = ("checks",)

    def __init__(self) -> None:
        super().__init__()
        self.checks = 0


def _hold(conn: Connection, channel: str) -> bool:
    """Hold ``channel``'s live events for ``conn`` until ``_release``; False when there is nothing to hold
    (not subscribed, or its replay is holding them: the subscribe in progress sends them)."""
    if conn.closed or channel not in conn.channels:
        return False
    held = conn.replaying.get(channel) if conn.replaying else None
    if held is None:
        if conn.replaying is None:
            conn.replaying = {}
        held = conn.replaying[channel] = _Held()
    elif not isinstance(held, _Held):
        return False
    held.checks += 1
    return True


def _release(conn: Connection, channel: str) -> None:
    """One check of ``channel`` is over; when none is left, send what was held (if still subscribed)."""
    held = conn.replaying.get(channel) if conn.replaying else None
    if isinstance(held, _Held):
        held.checks -= 1
        if held.checks <= 0:
            for _event_id, frame in _stop_holding(conn, channel):
                conn.offer(frame)


def _stop_holding(conn: Connection, channel: str) -> list[tuple[str, Outgoing]]:
    """The live events held back during ``channel``'s replay (none left held afterwards)."""
    if conn.replaying is None:
        return []
    held = conn.replaying.pop(channel, [])
    if not conn.replaying:
        conn.replaying = None
    return held


def _publishable(channel: Any) -> bool:
    if not isinstance(channel, str) or len(channel) > MAX_CHANNEL_LENGTH or not CHANNEL_NAME.match(channel):
        return False
    kind, _, rest = channel.partition(":")
    return ((kind == "feed" and not rest) or (kind == "user" and rest.isdigit())
            or (kind == "unit" and bool(rest) and ":" not in rest)
            or (kind == "miniapp" and rest.count(":") >= 1 and all(rest.split(":"))))


def _token_of(ws: WebSocket) -> tuple[str | None, str | None]:
    """(token, problem): from ``Authorization: Bearer``, the ``token`` query parameter, or the cookie."""
    # Parsed from the scope here rather than through ``ws.headers`` and friends, which would stay
    # cached on the WebSocket for as long as the connection is open.
    headers = Headers(scope=ws.scope)
    header = headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None, "Authorization header must be 'Bearer <token>'"
        return token.strip(), None
    token = QueryParams(ws.scope["query_string"]).get("token")
    if token:
        return token, None
    cookie = cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE)
    if cookie:
        # The shell's own pages sign in with an httpOnly cookie their scripts cannot read. Browsers
        # send cookies on cross-site WebSocket handshakes too, so only our own origin may use it.
        origin = (headers.get("origin") or "").rstrip("/")
        own = {f"http://{headers.get('host', '')}", f"https://{headers.get('host', '')}"}
        trusted = {o.rstrip("/") for o in ws.app.state.settings.trusted_origins}
        if origin in own or origin in trusted:
            return cookie, None
        return None, "the session cookie is accepted only from this site's own pages"
    return None, "sign in first: send 'Authorization: Bearer <token>' or connect to /ws?token=<token>"


async def _refuse(ws: WebSocket, detail: str) -> None:
    try:
        await ws.send_json({"type": "error", "code": "unauthorized", "detail": detail})
        await ws.close(CLOSE_UNAUTHORIZED, _close_reason(f"unauthorized: {detail}"))
    except Exception:  # the client did not wait for the answer
        pass


async def realtime_socket(scope: Scope, receive: Receive, send: Send) -> None:
    """``/ws`` as a plain ASGI app: hand the connection to the app's hub (protocol: the module docstring)."""
    await scope["app"].state.realtime.serve(WebSocket(scope, receive, send), receive)


class RealtimeSocketMiddleware:
    """Serves ``/ws`` ahead of the routing and of the app's other middleware, for memory.

    An open WebSocket keeps its whole ASGI call stack alive for as long as it is open. Through the
    router that is a dozen more coroutines, a FastAPI exit stack, a second WebSocket object and the
    exception handlers' wrappers on every connection, about a fifth of what an idle one costs; none
    of them does anything for ``/ws``, which answers errors in its own protocol. The app adds this
    middleware last, so it is the outermost of its own (a correlation id, say, would otherwise hold
    a UUID, a wrapped ``send`` and a rewritten header list per connection for nothing). HTTP
    requests and other WebSocket paths go on to the app unchanged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``/ws`` to the hub, everything else to the app."""
        if scope["type"] == "websocket" and _route_path(scope) == "/ws":
            await realtime_socket(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


@router.websocket("/ws")
async def realtime_route(websocket: WebSocket) -> None:
    """``/ws`` as a route: names the path for route listings, and serves it in an app built without ``install``."""
    await websocket.app.state.realtime.serve(websocket)


class _RedactTokens(logging.Filter):
    """uvicorn logs each WebSocket's path with its query string: keep ``?token=`` out of the logs."""

    pattern = re.compile(r"([?&]token=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(self.pattern.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                                for a in record.args)
        elif isinstance(record.msg, str) and "token=" in record.msg:
            record.msg = self.pattern.sub(r"\1[redacted]", record.msg)
        return True


def _redact_tokens_in_server_logs() -> None:
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactTokens) for f in logger.filters):
            logger.addFilter(_RedactTokens())


def install(app: FastAPI) -> list[Callable[[], Awaitable[None]]]:
    """Attach the hub to ``app`` as ``app.state.realtime``; returns the background loops its lifespan runs."""
    settings = app.state.settings
    hub = RealtimeHub(
        broker=app.state.broker, authenticator=app.state.authenticator, engine=app.state.engine,
        miniapps=app.state.miniapps,
        heartbeat_seconds=float(getattr(settings, "ws_heartbeat_seconds", 25.0)),
        queue_size=int(getattr(settings, "ws_queue_size", 256)),
        host_of=lambda: getattr(app.state, "host", None),
    )
    app.state.realtime = hub
    _redact_tokens_in_server_logs()
    _announce_miniapp_feed_items(app, hub)
    return [hub.run_fan_in, hub.run_heartbeats]


def _announce_miniapp_feed_items(app: FastAPI, hub: RealtimeHub) -> None:
    """Feed items a mini-app publishes through its HostContext reach /ws too.

    The feed's routes announce their items to the hub themselves; a mini-app's item arrives only as
    a ``FeedItemPublished`` domain event (a HostContext has no hub), so the hub subscribes to those
    that name a mini-app and announces them the way the feed does (same channels, same payload).
    """
    from core.feed.events import FeedItemPublished
    from plugins.registry import EventSubscriber

    class _NoBus:
        async def publish(self, event: Any) -> int:  # already on the bus: that is how we heard of it
            return 0

    async def announce(event: FeedItemPublished, host: Any) -> None:
        if event.miniapp is None:
            return
        from core.feed.service import announce as feed_announce

        await feed_announce(event, events=_NoBus(), realtime=hub)

    events = getattr(app.state, "events", None)
    if events is not None:
        events.subscribe(EventSubscriber(FeedItemPublished, announce, "core"))
