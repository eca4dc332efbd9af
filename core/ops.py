"""Operations endpoints: liveness, readiness (database and broker) and Prometheus metrics."""

from __future__ import annotations

import asyncio
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from core.db import DatabaseUnavailable, check_reachable
from core.errors import Problem

router = APIRouter(tags=["operations"])


@router.get("/healthz", operation_id="healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz", operation_id="readyz", summary="Readiness: database and broker")
async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers and the broker answers; 503 naming what is down otherwise."""
    checks: dict[str, str] = {}
    try:
        await run_in_threadpool(check_reachable, request.app.state.engine)
        checks["database"] = "ok"
    except DatabaseUnavailable as exc:
        checks["database"] = str(exc)
    try:
        await asyncio.wait_for(request.app.state.broker.ping(), timeout=2)
        checks["broker"] = "ok"
    except Exception as exc:  # any broker failure means not ready; say which
        checks["broker"] = f"{type(exc).__name__}: {exc}"
    ready = all(value == "ok" for value in checks.values())
    if ready:
        return JSONResponse({"status": "ready", "checks": checks})
    down = ", ".join(name for name, value in checks.items() if value != "ok")
    return JSONResponse(
        {"type": "about:blank", "title": "Service Unavailable", "status": 503,
         "detail": f"not ready: {down}", "checks": checks},
        status_code=503, media_type="application/problem+json",
    )


@router.get("/metrics", operation_id="metrics", summary="Prometheus metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Counters and histograms in the Prometheus text format, for whoever holds SUPERAPP_METRICS_TOKEN.

    Without a token it is off in production (404) and open in development and tests.
    """
    settings = request.app.state.settings
    if settings.metrics_token:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(),
                                                                    settings.metrics_token.encode()):
            raise Problem(401, "metrics need the bearer token set in SUPERAPP_METRICS_TOKEN",
                          field="header.authorization", headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    elif settings.env == "production":
        raise Problem(404, "metrics are off: set SUPERAPP_METRICS_TOKEN to scrape them")
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
