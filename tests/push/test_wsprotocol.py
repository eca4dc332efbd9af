"""The WebSocket protocol ``superapp serve`` hands uvicorn: its lean parts, its options, and who uses them."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner
from uvicorn.config import Config
from uvicorn.main import main as uvicorn_main
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from push.wsprotocol import (
    UVICORN_OPTIONS,
    LeanWebSocketProtocol,
    ReceiveQueue,
    WritableFlag,
    uvicorn_cli_options,
)


async def test_receive_queue_is_first_in_first_out_and_wakes_a_waiting_reader() -> None:
    queue = ReceiveQueue()
    assert queue.empty()
    reader = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not reader.done()
    queue.put_nowait({"type": "websocket.connect"})
    queue.put_nowait({"type": "websocket.receive", "text": "1"})
    assert await reader == {"type": "websocket.connect"}
    assert not queue.empty()
    assert await queue.get() == {"type": "websocket.receive", "text": "1"}
    assert queue.empty() and (queue._messages, queue._waiters) == (None, None)


async def test_a_cancelled_reader_hands_its_message_to_the_next() -> None:
    queue = ReceiveQueue()
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("m")  # wakes the first reader...
    first.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 1) == "m"
    assert queue._waiters is None


async def test_writable_flag_holds_writers_until_set() -> None:
    flag = WritableFlag()
    assert flag.is_set() and await flag.wait() is True
    flag.clear()
    writers = [asyncio.create_task(flag.wait()) for _ in range(2)]
    gone = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    assert not any(w.done() for w in writers)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    assert len(flag._waiters) == 2  # the cancelled writer left
    flag.set()
    assert await asyncio.gather(*writers) == [True, True]
    assert flag._waiters is None


def _new_protocol(cls: type, loop: asyncio.AbstractEventLoop) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not served here")

    config = Config(app, **UVICORN_OPTIONS)
    config.load()
    return cls(config=config, server_state=ServerState(), app_state={}, _loop=loop)


def test_a_lean_protocol_costs_much_less_than_uvicorns_before_any_traffic() -> None:
    """What every open connection starts with (the rest is measured by bench/bench_ws.py)."""
    loop = asyncio.new_event_loop()
    try:
        sizes = {}
        for cls in (WebSocketsSansIOProtocol, LeanWebSocketProtocol):
            _new_protocol(cls, loop)  # first use: imports and caches
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                kept = [_new_protocol(cls, loop) for _ in range(200)]
                sizes[cls] = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
            finally:
                tracemalloc.stop()
        assert sizes[LeanWebSocketProtocol] < sizes[WebSocketsSansIOProtocol] - 3000, sizes
    finally:
        loop.close()


def test_options_turn_deflate_off_and_load_the_lean_protocol() -> None:
    loop = asyncio.new_event_loop()
    try:
        protocol = _new_protocol(LeanWebSocketProtocol, loop)
    finally:
        loop.close()
    assert protocol.config.ws_protocol_class is LeanWebSocketProtocol
    assert protocol.config.ws_per_message_deflate is False and protocol.conn.available_extensions == []
    assert protocol.config.ws_max_size == 65536


def test_command_line_options_say_the_same_to_uvicorn() -> None:
    context = uvicorn_main.make_context("uvicorn", ["core.app:create_app_from_env", *uvicorn_cli_options()])
    assert {name: context.params[name] for name in UVICORN_OPTIONS} == UVICORN_OPTIONS


def test_superapp_serve_uses_the_options(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.cli import main

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(options, app=app))
    for name in ("SUPERAPP_REDIS_URL", "SUPERAPP_MINIAPPS", "SUPERAPP_MINIAPPS_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SUPERAPP_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("SUPERAPP_ENV", "dev")
    result = CliRunner().invoke(main, ["serve", "--port", "8799"])
    assert result.exit_code == 0, result.output
    assert seen["app"] == "core.app:create_app_from_env"
    assert {name: seen[name] for name in UVICORN_OPTIONS} == UVICORN_OPTIONS
