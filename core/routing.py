"""Route matching that costs a few string comparisons per router instead of a regular expression per route.

FastAPI keeps each included router as one branch and finds a request's route by asking every branch,
in order, to match the path against each of its routes (a regular expression and some bookkeeping per
route), then matches the chosen branch again to handle it. With the host's and the mini-apps' some
200 routes in 30 branches, a request to a route near the end paid about a hundred route matches, the
largest cost of a cached answer (profiled on ``/api/inbox/badge``: 55% of the request).

Every route of a branch starts with a literal part (its path up to the first ``{``), so a branch whose
literal parts the request path does not start with cannot match it, fully or partly. ``index_routes``
gives each such branch a guard that says so with ``str.startswith`` before FastAPI's own matching runs;
what FastAPI decides for the paths that pass is unchanged. Inside a router a path passes, each of its
routes gets the same kind of guard (``_RouteGuard``: its own literal part, or its whole path when it
has no parameters), so FastAPI runs a route's regular expression only where it could match. And each
app's branch for a guarded router asks the router's guard before FastAPI's own bookkeeping around the
branch (``_BranchGuard``): that bookkeeping, for the 20-odd branches a request passes, cost more than
the guards themselves.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette._utils import get_route_path
from starlette.routing import Match, Route, WebSocketRoute

PLAIN_ROUTES = (APIRoute, APIWebSocketRoute, Route, WebSocketRoute)


def _literal(path: str) -> str:
    """The part of a route's path before its first parameter."""
    return path.split("{", 1)[0]


def index_routes(app: FastAPI) -> int:
    """Guard each included router of ``app`` by its routes' literal path parts; returns how many were guarded.

    Call it once every router is included. A router holding anything but plain routes (nested routers,
    mounts) is left as it is, and so is every route on a FastAPI that does not keep routers as branches.
    """
    guarded = 0
    for branch in app.router.routes:
        router = getattr(branch, "original_router", None)
        prefix = getattr(getattr(branch, "include_context", None), "prefix", None)
        if router is None or prefix is None or not router.routes:
            continue
        if not all(isinstance(route, PLAIN_ROUTES) for route in router.routes):
            continue
        existing = router.__dict__.get("matches")
        if isinstance(existing, _Guard):
            # A module-level router is the same object in every app built in this process (tests build
            # hundreds), and may be included under more than one prefix: widen its one guard instead of
            # stacking a guard per app, which grew the call stack with each app until it overflowed.
            existing.add_prefix(prefix)
        else:
            existing = router.matches = _Guard(router, prefix, router.matches)  # an instance attribute: this router only
        # The branch (this app's own object) asks the same guard first: for the 20-odd branches a request
        # passes on its way, FastAPI's bookkeeping around each branch's match cost more than the guard.
        branch.matches = _BranchGuard(existing, branch)
        guarded += 1
    return guarded


class _Guard:
    """``matches`` of one router, answering NONE at once for paths none of its routes can match."""

    def __init__(self, router: Any, prefix: str, matches: Any) -> None:
        self._router, self._matches = router, matches
        self._prefixes = {prefix}
        self._size = -1
        self._exact: frozenset[str] = frozenset()
        self._literals: tuple[str, ...] = ()

    def add_prefix(self, prefix: str) -> None:
        """Let through, too, the paths of this router's routes under ``prefix``."""
        if prefix not in self._prefixes:
            self._prefixes.add(prefix)
            self._size = -1  # learn again on the next request

    def _learn(self) -> None:
        # Routes added later (rare: tests, late registration) are learnt on the next request.
        paths = [prefix + route.path for prefix in self._prefixes for route in self._router.routes]
        for route in self._router.routes:
            if isinstance(route, APIRoute):
                _guard_route(route, [prefix + route.path for prefix in self._prefixes])
        # A route without parameters matches its own path only; one with parameters, paths that start
        # with its literal part. (A path that differs by a trailing slash must still reach FastAPI,
        # which redirects it.)
        self._exact = frozenset(p.rstrip("/") or "/" for p in paths if "{" not in p)
        self._literals = tuple(sorted({_literal(p) for p in paths if "{" in p}))
        self._size = len(paths)

    def could_match(self, scope: Any) -> bool:
        """False when none of this router's routes can match the request's path, not even partly."""
        if len(self._router.routes) * len(self._prefixes) != self._size:
            self._learn()
        path = get_route_path(scope)
        return (path.rstrip("/") or "/") in self._exact or path.startswith(self._literals)

    def __call__(self, scope: Any) -> tuple[Match, dict[str, Any]]:
        return self._matches(scope) if self.could_match(scope) else (Match.NONE, {})


class _BranchGuard:
    """``matches`` of one app's branch for a guarded router: NONE before FastAPI's own bookkeeping."""

    def __init__(self, guard: _Guard, branch: Any) -> None:
        self._guard, self._branch = guard, branch

    def __call__(self, scope: Any) -> tuple[Match, dict[str, Any]]:
        if not self._guard.could_match(scope):
            return Match.NONE, {}
        return type(self._branch).matches(self._branch, scope)  # type: ignore[no-any-return]


def _guard_route(route: APIRoute, paths: list[str]) -> None:
    """Let ``route`` answer NONE at once for a path none of its full ``paths`` can match.

    Inside a router a request passed to, FastAPI still asks each of its routes in turn (a regular
    expression and scope bookkeeping each): the feedback router's 45 routes were a third of a kept map
    layer's matching. A route's regular expression starts with its literal part and, without parameters,
    is nothing else, so a path that is not that (or does not start with it) cannot match.
    """
    route.matches = _RouteGuard(route, paths)  # type: ignore[method-assign]  # replaces an earlier app's


class _RouteGuard:
    """``matches`` of one route, answering NONE for paths that cannot match any of its full paths."""

    def __init__(self, route: APIRoute, paths: list[str]) -> None:
        self._route = route
        self._exact = frozenset(p for p in paths if "{" not in p)
        self._literals = tuple(sorted({_literal(p) for p in paths if "{" in p}))

    def __call__(self, scope: Any) -> tuple[Match, dict[str, Any]]:
        path = get_route_path(scope)
        if path not in self._exact and not (self._literals and path.startswith(self._literals)):
            return Match.NONE, {}
        return type(self._route).matches(self._route, scope)  # the class's, looked up now
