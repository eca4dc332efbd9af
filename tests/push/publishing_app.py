"""The host as ``superapp serve`` builds it, plus one test-only route to publish through this process.

Used only by the two-process test: ``uvicorn tests.push.publishing_app:create --factory``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Body, FastAPI

from core.app import create_app_from_env


def create() -> FastAPI:
    """``core.app.create_app_from_env()`` with ``POST /_test/publish`` (never part of the product)."""
    app = create_app_from_env()

    @app.post("/_test/publish")
    async def publish(channel: str = Body(), event: dict[str, Any] = Body()) -> dict[str, str]:
        """Publish through this process's hub; the answer carries the event id."""
        return {"id": await app.state.realtime.publish(channel, event)}

    return app
