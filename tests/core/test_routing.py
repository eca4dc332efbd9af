"""Guarded route matching: the same answers as FastAPI's own matching, with far fewer routes tried per request."""

from __future__ import annotations

import re
from unittest import mock

from fastapi import APIRouter
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from core.app import create_app
from core.routing import index_routes
from tests.conftest import base_settings


def _paths(app) -> list[str]:
    """Every route path of the app with its parameters filled in, plus near misses around them."""
    paths = set()
    for path in app.openapi()["paths"]:
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        paths.update({concrete, concrete + "/", concrete + "x", concrete.rsplit("/", 1)[0] + "/nope"})
    return sorted(paths | {"/", "/nope", "/api", "/api/", "/m/", "/m/nope/", "/api/miniapps/nope/x"})


def test_guarded_matching_answers_as_fastapi_does(sqlite_url: str) -> None:
    settings = base_settings(database_url=sqlite_url)
    guarded, plain = create_app(settings), create_app(settings)
    # create_app guards its routers; take the guards off the second app to compare with FastAPI's own.
    for branch in plain.router.routes:
        router = getattr(branch, "original_router", None)
        if router is not None:
            router.__dict__.pop("matches", None)
    assert all("matches" not in getattr(b, "original_router", object()).__dict__
               for b in plain.router.routes if hasattr(b, "original_router"))
    with TestClient(guarded, follow_redirects=False) as a, TestClient(plain, follow_redirects=False) as b:
        differences = []
        for path in _paths(guarded):
            for method in ("GET", "POST", "DELETE"):
                left, right = a.request(method, path), b.request(method, path)
                if (left.status_code, left.headers.get("location")) != (right.status_code, right.headers.get("location")):
                    differences.append((method, path, left.status_code, right.status_code))
        assert differences == []


def test_a_request_tries_only_the_routes_that_could_match(sqlite_url: str) -> None:
    app = create_app(base_settings(database_url=sqlite_url))
    total = sum(len(getattr(b, "original_router", APIRouter()).routes) for b in app.router.routes)
    calls = []
    original = APIRoute.matches

    def counting(self, scope):
        calls.append(self.path)
        return original(self, scope)

    with TestClient(app) as client, mock.patch.object(APIRoute, "matches", counting):
        assert client.get("/api/inbox/badge").status_code == 401  # matched, then refused: no credentials
    # FastAPI alone tries every route before it on the way, and again to handle it (about 100 here).
    assert total > 150 and 0 < len(calls) <= 30


def test_routes_added_after_indexing_are_found(sqlite_url: str) -> None:
    app = create_app(base_settings(database_url=sqlite_url))
    router = APIRouter()

    @router.get("/api/late")
    def late() -> dict[str, bool]:
        return {"late": True}

    app.include_router(router)
    index_routes(app)

    @router.get("/api/later/{n}")
    def later(n: int) -> dict[str, int]:
        return {"n": n}

    with TestClient(app) as client:
        assert client.get("/api/late").json() == {"late": True}
        assert client.get("/api/later/3").json() == {"n": 3}
