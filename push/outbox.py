"""Durable push outbox worker (being built)."""

from collections.abc import Awaitable, Callable

from fastapi import FastAPI


def install(app: FastAPI) -> list[Callable[[], Awaitable[None]]]:
    """Attach the delivery worker to ``app``; returns the background tasks its lifespan must run."""
    return []
