"""Operations endpoints: liveness, readiness (database and broker) and Prometheus metrics."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

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


async def _schema(app: Any) -> str:
    """``ok``, or where the models and the migrated database differ (naming the mini-app, table and column).

    Compared once per worker and remembered while it agrees: a worker whose mini-app has a column its
    migrations lack would answer 500 to every call to it, so it is not ready until it is migrated.
    """
    if getattr(app.state, "schema_agrees", False):
        return "ok"
    from core.checks import schema_findings

    try:
        findings = await run_in_threadpool(schema_findings, app.state.engine, app.state.miniapps)
    except Exception as exc:  # a schema that cannot even be compared is not ready either
        return f"cannot compare the models with the database: {type(exc).__name__}: {exc}"
    if findings:
        return "; ".join(findings[:5])
    app.state.schema_agrees = True
    return "ok"


@router.get("/readyz", operation_id="readyz", summary="Readiness: database and broker",
            responses={503: {"description": "Not ready: the database cannot be reached, or its schema is behind"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready with the database and the broker; degraded (still 200) without the broker; 503 without the database.

    A worker without Redis still signs people in, takes sensor readings and serves pages: rate limits
    count in its own memory and live events wait in its memory until Redis returns (core/fallback.py,
    push/broker.py). Every worker loses the same Redis at once, so a load balancer that dropped them
    all would turn a degraded service into none: a broker outage answers 200 with ``"status":
    "degraded"``. Only a database it cannot reach takes a worker out of rotation (503).
    """
    checks: dict[str, str] = {}
    try:
        await run_in_threadpool(check_reachable, request.app.state.engine)
        checks["database"] = "ok"
    except DatabaseUnavailable as exc:
        checks["database"] = str(exc)
    broker = request.app.state.broker
    try:
        await asyncio.wait_for(broker.ping(), timeout=2)
        checks["broker"] = "ok"
    except Exception as exc:  # any broker failure degrades; say which
        checks["broker"] = f"{type(exc).__name__}: {exc}"
    held = getattr(broker, "held", 0)
    if held:
        checks["broker"] += f" ({held} live event(s) held for replay)"
    if checks["database"] == "ok":
        checks["schema"] = await _schema(request.app)
    if checks["database"] != "ok" or checks.get("schema") != "ok":
        what = "database" if checks["database"] != "ok" else "schema"
        return JSONResponse(
            {"type": "about:blank", "title": "Service Unavailable", "status": 503,
             "detail": f"not ready: {what}", "checks": checks},
            status_code=503, media_type="application/problem+json",
        )
    if checks["broker"] != "ok":
        return JSONResponse({"status": "degraded", "degraded": ["broker"], "checks": checks})
    return JSONResponse({"status": "ready", "checks": checks})


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
