"""Guarded route matching: the same answers as FastAPI's own matching, with far fewer routes tried per request."""

from __future__ import annotations

import re
from unittest import mock

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from core.app import create_app
from core.routing import _BranchGuard, _Guard, _RouteGuard, index_routes
from tests.conftest import base_settings


def _paths(app) -> list[str]:
    """Every route path of the app with its parameters filled in, plus near misses around them."""
    paths = set()
    for path in app.openapi()["paths"]:
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        paths.update({concrete, concrete + "/", concrete + "x", concrete.rsplit("/", 1)[0] + "/nope"})
    return sorted(paths | {"/", "/nope", "/api", "/api/", "/m/", "/m/nope/", "/api/miniapps/nope/x"})


def _answers(app, paths: list[str]) -> dict[tuple[str, str], tuple[int, str | None]]:
    """Status and redirect target of GET, POST and DELETE on each path."""
    with TestClient(app, follow_redirects=False) as client:
        return {(method, path): ((r := client.request(method, path)).status_code, r.headers.get("location"))
                for path in paths for method in ("GET", "POST", "DELETE")}


def test_guarded_matching_answers_as_fastapi_does(sqlite_url: str) -> None:
    app = create_app(base_settings(database_url=sqlite_url))
    paths = _paths(app)
    guarded = _answers(app, paths)
    # The routers are module-level objects shared by every app: compare with FastAPI's own matching by
    # letting every guard through, on the same app.
    with (mock.patch.object(_Guard, "__call__", lambda guard, scope: guard._matches(scope)),
          mock.patch.object(_BranchGuard, "__call__", lambda guard, scope: type(guard._branch).matches(guard._branch, scope)),
          mock.patch.object(_RouteGuard, "__call__", lambda guard, scope: APIRoute.matches(guard._route, scope))):
        plain = _answers(app, paths)
    assert len(guarded) > 600
    assert {k: (v, plain[k]) for k, v in guarded.items() if v != plain[k]} == {}


def test_apps_built_one_after_another_share_one_guard_per_router(sqlite_url: str) -> None:
    settings = base_settings(database_url=sqlite_url)
    first = create_app(settings)
    routers = [b.original_router for b in first.router.routes
               if isinstance(getattr(b, "original_router", None) and b.original_router.__dict__.get("matches"), _Guard)]
    for _ in range(3):  # a test process builds hundreds of apps; each used to wrap the guard once more
        create_app(settings)
    assert len(routers) > 20
    for router in routers:
        assert isinstance(router.matches, _Guard) and not isinstance(router.matches._matches, _Guard)
    with TestClient(first) as client:
        assert client.get("/api/inbox/badge").status_code == 401


def test_a_router_included_under_two_prefixes_matches_under_both() -> None:
    router = APIRouter()

    @router.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app = FastAPI()
    app.include_router(router, prefix="/a")
    app.include_router(router, prefix="/b")
    assert index_routes(app) == 2
    with TestClient(app) as client:
        assert client.get("/a/items/1").json() == {"id": 1}
        assert client.get("/b/items/2").json() == {"id": 2}
        assert client.get("/c/items/3").status_code == 404


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
    # Within the inbox router the routes' own guards let only the one that matches be tried.
    assert "/api/inbox/badge" in calls and "/api/inbox" not in calls, calls


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
