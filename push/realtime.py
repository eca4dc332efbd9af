"""Realtime hub at /ws (being built)."""

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI

router = APIRouter(include_in_schema=False)


def install(app: FastAPI) -> list[Callable[[], Awaitable[None]]]:
    """Attach the hub to ``app``; returns the background tasks its lifespan must run."""
    return []
