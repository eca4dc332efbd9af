"""The baseline: a bare FastAPI app with one tiny JSON endpoint and nothing else.

No middleware, dependency, database or settings, so its requests per second are the ceiling that
FastAPI + uvicorn reach on this machine right now; product endpoints are reported as a fraction of it.
"""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI(title="bench baseline", docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/bare")
async def bare() -> dict[str, str]:
    """A small JSON object, served the cheapest idiomatic way (``async def``, no thread-pool hop)."""
    return {"status": "ok"}
