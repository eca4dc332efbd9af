"""Cross-site WebSocket hijacking: the shell's session cookie counts only from this site's pages."""

from __future__ import annotations

import asyncio
import json

import websockets

from tests.push_pages.test_inbox_browser import _officials


async def test_websocket_refuses_the_cookie_from_another_origin(live_url, settings) -> None:
    token = _officials(settings)

    async def attempt(origin: str) -> tuple[dict, int | None]:
        """The first frame the server sends after a subscribe, and the close code if it closed."""
        async with websockets.connect(live_url.replace("http", "ws", 1) + "/ws", origin=origin,
                                      additional_headers={"Cookie": f"superapp_session={token}"}) as socket:
            try:
                await socket.send(json.dumps({"type": "subscribe", "channels": ["feed"]}))
                frame = json.loads(await asyncio.wait_for(socket.recv(), 5))
            except websockets.ConnectionClosed as closed:
                return {}, closed.rcvd.code if closed.rcvd else None
            return frame, None

    frame, code = await attempt("http://evil.example")
    assert frame.get("code") == "unauthorized" or code == 4401
    frame, code = await attempt(live_url)
    assert frame["type"] == "subscribed" and code is None
