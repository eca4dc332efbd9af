"""How ``superapp serve`` serves WebSockets: uvicorn's sans-I/O protocol, holding less per open connection.

A worker holds ten thousand idle ``/ws`` connections (issue 13), so what each one keeps for its whole
life decides how many fit. uvicorn's ``websockets-sansio`` protocol keeps, per connection, an
``asyncio.Queue`` (four deques and an Event: about 3.7 KiB before a message arrives), a writable
``asyncio.Event`` (one more deque) and the handshake's request and response with their headers
(about 3 KiB) long after the handshake is over. ``LeanWebSocketProtocol`` is that protocol with
lighter parts: a receive queue and a writable flag that allocate only while someone waits or a
message waits, and the handshake dropped once the upgrade is answered. Frames, flow control,
keepalive and close handling are uvicorn's own, unchanged.

``UVICORN_OPTIONS`` are the WebSocket options of ``superapp serve``; ``bench.bench_ws`` serves the
product with the same ones (``uvicorn_cli_options``). permessage-deflate is off: browsers offer it,
and a compressed connection holds zlib contexts of about 43 KiB (12-bit windows, memLevel 5) and
needs every frame compressed for it alone, so an event could no longer be serialised once and
written as the same bytes to every socket; the events are a few hundred bytes of JSON, which
deflate barely shrinks.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

UVICORN_OPTIONS: dict[str, Any] = {
    "ws": "push.wsprotocol:LeanWebSocketProtocol",
    "ws_per_message_deflate": False,
    "ws_max_size": 65536,  # over-size client frames get 1009 from uvicorn, not 16 MiB of buffering
}


def uvicorn_cli_options() -> list[str]:
    """``UVICORN_OPTIONS`` as ``uvicorn`` command-line arguments."""
    return ["--ws", UVICORN_OPTIONS["ws"],
            "--ws-per-message-deflate", str(UVICORN_OPTIONS["ws_per_message_deflate"]).lower(),
            "--ws-max-size", str(UVICORN_OPTIONS["ws_max_size"])]


class ReceiveQueue:
    """The part of ``asyncio.Queue`` uvicorn's protocol uses (``put_nowait``, ``get``, ``empty``).

    Unbounded, like the queue it replaces (uvicorn pauses reading while a message waits). Its list
    and the future a reader waits on exist only while they are needed.
    """

    __slots__ = ("_messages", "_waiters")

    def __init__(self) -> None:
        self._messages: list[Any] | None = None
        self._waiters: list[asyncio.Future[None]] | None = None

    def put_nowait(self, message: Any) -> None:
        """Add ``message`` and wake the first reader waiting for one."""
        if self._messages is None:
            self._messages = [message]
        else:
            self._messages.append(message)
        if self._waiters:
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)
                    break

    def empty(self) -> bool:
        """No message is waiting."""
        return not self._messages

    async def get(self) -> Any:
        """The oldest message, waiting for one if there is none."""
        while not self._messages:
            waiter = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = [waiter]
            else:
                self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and self._messages:
                    self._wake_next(waiter)  # the wake-up it was given belongs to the next reader
                raise
            finally:
                self._forget(waiter)
        message = self._messages.pop(0)
        if not self._messages:
            self._messages = None
        return message

    def _wake_next(self, skipped: asyncio.Future[None]) -> None:
        for waiter in self._waiters or ():
            if waiter is not skipped and not waiter.done():
                waiter.set_result(None)
                return

    def _forget(self, waiter: asyncio.Future[None]) -> None:
        if self._waiters is not None:
            self._waiters.remove(waiter)
            if not self._waiters:
                self._waiters = None


class WritableFlag:
    """The part of ``asyncio.Event`` uvicorn's protocol uses for flow control: set while the socket takes bytes."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        """The transport accepts writes."""
        return self._set

    def set(self) -> None:
        """Writes may go on: wake every writer waiting."""
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        """The transport's buffer is full: writers wait."""
        self._set = False

    async def wait(self) -> bool:
        """Return at once while set, else when ``set`` is called."""
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = [waiter]
        else:
            self._waiters.append(waiter)
        try:
            return await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol without what an open connection no longer needs."""

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # Replaced before any use: the asyncio originals cost about 4 KiB per connection while idle.
        self.queue = ReceiveQueue()  # type: ignore[assignment]
        self.writable = WritableFlag()  # type: ignore[assignment]

    async def send(self, message: Any) -> None:
        """uvicorn's ASGI send; once the upgrade is answered, the handshake's request and response go."""
        await super().send(message)
        if self.handshake_complete and getattr(self, "request", None) is not None:
            # websockets' parser keeps the request it parsed in its generator's frame for as long as
            # the connection lives; uvicorn copied the headers into the ASGI scope, so they go.
            self.request.headers.clear()
            self.request = self.response = None
