"""The app factory: ``create_app(settings)`` builds one host with its own plugin manager and engine."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import xstatic.pkg.leaflet as leaflet
from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from config import Settings, load_settings
from config.logging import configure_logging
from core import __version__, retention
from core.admin import router as admin_pages
from core.db import check_reachable, make_engine
from core.errors import install_problem_handlers
from core.events import EventBus
from core.feed.pages import router as feed_pages
from core.feed.publisher import FeedPublisher
from core.feed.routes import router as feed_router
from core.feed.warnings import warning_subscriber
from core.http import AnswersBeforeRouting, HeadAsGet
from core.identity.authn import Authenticator
from core.identity.authz import Authorizer, permission_checks
from core.identity.consent import ConsentService
from core.identity.firebase import verifier_from_settings
from core.identity.pages import router as identity_pages
from core.identity.ratelimit import SignInLimiter
from core.identity.routes import router as identity_router
from core.limits import BodyLimitMiddleware
from core.manifests import ManifestCache
from core.manifests import router as manifests_router
from core.media import media_store
from core.miniapp_settings import MiniAppSettingsStore
from core.miniapp_settings.routes import pages as settings_pages
from core.miniapp_settings.routes import router as settings_router
from core.ops import router as ops_router
from core.problems import document_problems
from core.problems import router as problems_router
from core.pwa import router as pwa_router
from core.routing import index_routes
from core.scheduler import scheduler_loop
from core.search import pages as search_pages
from core.search import router as search_router
from core.security import install_security
from core.shell import router as shell_router
from core.units.directory import UnitsDirectory
from core.units.routes import router as units_router
from core.warning_pages import router as warning_pages
from core.web import build_templates
from core.webapps import webhooks as webapp_webhooks
from core.webapps.admin_pages import router as webapp_admin_pages
from core.webapps.pages import router as webapp_pages
from core.webapps.routes import router as webapp_router
from core.webapps.s2s import ClientRateLimiter
from core.webapps.s2s import router as webapp_s2s
from core.webapps.service import WebApps
from plugins.context import Host
from plugins.events import MiniAppsLoaded
from plugins.hookspecs import CONTRACT_VERSION
from plugins.manager import find_candidates, load_miniapps, select
from plugins.registry import ContractError, MiniApp
from push import inbox, inbox_cache, outbox, realtime
from push.broker import make_broker
from push.notifier import Notifier
from push.pages import router as push_pages
from push.routes import follow_unit, unfollow_unit
from push.routes import router as push_router

log = logging.getLogger(__name__)
CORE_ROUTERS = (
    ops_router, manifests_router, units_router, identity_router, identity_pages, feed_router, feed_pages,
    push_router, push_pages, realtime.router, shell_router, warning_pages, search_router, search_pages,
    settings_router, settings_pages, webapp_router, webapp_s2s, webapp_pages, webapp_admin_pages,
    admin_pages, pwa_router, problems_router,
)
RESERVED_IDS = frozenset({"core", "shell", "api", "static", "admin", "auth", "ws"})


def discover(settings: Settings) -> list[MiniApp]:
    """Find, select and load the mini-apps ``settings`` allow; raises ContractError naming the culprit."""
    candidates = select(
        find_candidates(
            builtin_package=settings.builtin_miniapps_package, use_entry_points=settings.load_entry_points
        ),
        allow=settings.miniapps,
        deny=settings.miniapps_disabled,
    )
    reserved = [c.id for c in candidates if c.id in RESERVED_IDS]
    if reserved:
        raise ContractError(f"mini-app id(s) {reserved} are reserved by the host; choose another id")
    _pm, miniapps = load_miniapps(candidates, host_version=CONTRACT_VERSION)
    return miniapps


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the host for ``settings`` (read from the environment when omitted)."""
    settings = settings or load_settings()
    miniapps = discover(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(check_reachable, app.state.engine)
        await app.state.broker.ping()
        await app.state.events.publish(MiniAppsLoaded(miniapp_ids=[m.id for m in miniapps]))
        # Notices committed in request threads are announced live on this loop.
        app.state.notifier.bind_loop(asyncio.get_running_loop())
        listener = asyncio.create_task(app.state.authenticator.listen())
        background = [asyncio.create_task(run()) for run in app.state.background]
        scheduler = None
        # The host's own jobs (retention) run beside the mini-apps', one worker per period across machines.
        jobs = [*retention.scheduled_jobs(settings), *webapp_webhooks.scheduled_jobs(app.state),
                *(job for m in miniapps for job in m.jobs)]
        if settings.scheduler_enabled and jobs:
            worker = f"{socket.gethostname()}:{os.getpid()}"
            scheduler = asyncio.create_task(
                scheduler_loop(app.state.engine, jobs, host=app.state.host, worker=worker)
            )
        try:
            yield
        finally:
            tasks = [listener, *background, *([scheduler] if scheduler else [])]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            app.state.notifier.bind_loop(None)
            await app.state.broker.close()
            if app.state.firebase is not None:
                app.state.firebase.close()
            app.state.engine.dispose()

    app = FastAPI(
        title="Hue super-app",
        version=__version__,
        summary="Identity, feed, push and pluggable mini-apps for a city's citizen super-app.",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.settings = settings
    app.state.miniapps = miniapps
    pool = {} if settings.sqlalchemy_url.startswith("sqlite") else {
        "pool_size": settings.database_pool_size, "max_overflow": settings.database_max_overflow}
    app.state.engine = make_engine(settings.sqlalchemy_url, **pool)
    app.state.broker = make_broker(settings.redis_url, database_url=settings.sqlalchemy_url)
    app.state.events = EventBus(s for m in miniapps for s in m.subscribers)
    app.state.templates = build_templates(miniapps)
    app.state.manifest_cache = ManifestCache()
    app.state.consents = ConsentService(app.state.engine)
    app.state.authorizer = Authorizer(miniapps)
    # Outside organisations' web mini-apps (core/webapps): launch keys, the live list, per-client rates.
    app.state.webapps = WebApps(app.state.engine, secret=settings.secret_key,
                                key_generation=settings.webapp_key_generation,
                                reserved_ids=set(RESERVED_IDS) | {m.id for m in miniapps})
    app.state.webapp_rates = ClientRateLimiter(settings.redis_url)
    app.state.authenticator = Authenticator(
        engine=app.state.engine, secret=settings.secret_key, cache_seconds=settings.auth_cache_seconds,
        broker=app.state.broker, trusted_origins=settings.trusted_origins,
    )
    app.state.sign_in_limiter = SignInLimiter(settings.redis_url, cap_seconds=settings.sign_in_backoff_cap_seconds,
                                              alert_failures=settings.sign_in_alert_failures)
    app.state.firebase = verifier_from_settings(settings)
    app.state.events.subscribe(warning_subscriber(app))
    # What core's pages use of push, handed in here so that core never imports push (.importlinter):
    # the shell's unread badge and the profile page's followed units (which move the phone's FCM topics too).
    app.state.unread_count = inbox.unread
    app.state.follow_unit, app.state.unfollow_unit = follow_unit, unfollow_unit
    app.state.notifier = Notifier(
        engine=app.state.engine, events=app.state.events,
        realtime_of=lambda: getattr(app.state, "realtime", None),
        inbox_cache_of=lambda: getattr(app.state, "inbox_cache", None),
        wake=lambda: getattr(app.state, "outbox_worker", None) and app.state.outbox_worker.wake(),
        topics_of=lambda: {m.id: {t.id: t.critical for t in m.manifest.notification_topics} for m in miniapps}
        | app.state.webapps.topics(),
    )
    app.state.media = media_store(settings)
    app.state.miniapp_settings = MiniAppSettingsStore(engine=app.state.engine, secret_key=settings.secret_key,
                                                      miniapps=miniapps)
    # Delivery parts attach themselves and say which background loops the lifespan must run.
    app.state.background = [*realtime.install(app), *outbox.install(app), *inbox_cache.install(app)]
    app.state.host = Host(engine=app.state.engine, settings=settings, publish_event=app.state.events.publish,
                          notifier=app.state.notifier, miniapp_settings=app.state.miniapp_settings,
                          realtime=app.state.realtime, media=app.state.media, authorizer=app.state.authorizer,
                          units=UnitsDirectory(), feed=FeedPublisher())
    app.state.events.host = app.state.host

    install_problem_handlers(app)
    early = {m.api_prefix + path: answer for m in miniapps for path, answer in m.answers_before_routing.items()}
    if early:  # inside HeadAsGet: a HEAD is answered as its GET would be
        app.add_middleware(AnswersBeforeRouting, answers=early)
    # Innermost: the routes see a GET, every other layer (security headers, authentication) the HEAD.
    app.add_middleware(HeadAsGet)
    install_security(app, settings)
    # Outside install_security's JSON guard, which reads a JSON body whole: every read is counted here.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")
    # Added last, so outermost: an open /ws keeps no other middleware's frames alive (push/realtime.py).
    app.add_middleware(realtime.RealtimeSocketMiddleware)
    for router in CORE_ROUTERS:
        app.include_router(router)
    app.mount("/static/core", StaticFiles(directory=Path(__file__).parent / "static"), name="static-core")
    # Leaflet comes from its package (xstatic-leaflet): /static/vendor/leaflet/leaflet.js and .css.
    app.mount("/static/vendor/leaflet", StaticFiles(directory=leaflet.BASE_DIR), name="static-leaflet")
    _mount_miniapps(app, miniapps)
    _check_permissions_declared(app.state.authorizer, miniapps)
    index_routes(app)
    document_problems(app)  # every operation's problem details in the OpenAPI (RFC 9457)
    return app


def _check_permissions_declared(authorizer: Authorizer, miniapps: list[MiniApp]) -> None:
    """A route that checks a permission nobody declared would deny everyone: refuse to start."""
    owners = [("core", list(CORE_ROUTERS))] + [
        (m.id, m.api_routers + m.page_routers + list(m.root_routers.values())) for m in miniapps
    ]
    for owner, routers in owners:
        undeclared = sorted(permission_checks(routers) - set(authorizer.permissions))
        if undeclared:
            where = "core" if owner == "core" else f"mini-app '{owner}'"
            raise ContractError(
                f"{where}: route(s) check undeclared permission(s) {undeclared}; declare them in "
                "superapp_register_permissions"
            )


def _operation_id(route: APIRoute) -> str:
    """Stable OpenAPI operation ids: the route's explicit id, else its function name."""
    return route.operation_id or route.name


def _mount_miniapps(app: FastAPI, miniapps: list[MiniApp]) -> None:
    """Mount every mini-app's routers under its namespace, refusing two routes with one method and path."""
    seen: dict[tuple[str, str], str] = {
        (method, route.path): "core"
        for router in CORE_ROUTERS for route in router.routes
        if isinstance(route, APIRoute) for method in route.methods
    }
    # A standard's root (e.g. /open311) may not shadow a top-level segment core or another mini-app uses.
    taken = {path.split("/")[1]: "core" for _method, path in seen} | dict.fromkeys(("m", "static", "ws"), "core")
    for miniapp in miniapps:
        for root in miniapp.root_routers:
            if root.lstrip("/") in taken:
                owner = taken[root.lstrip("/")]
                raise ContractError(f"mini-app '{miniapp.id}': root {root} is already used by '{owner}'")
            taken[root.lstrip("/")] = miniapp.id
        for prefix, routers, tags in (
            (miniapp.api_prefix, miniapp.api_routers, [miniapp.id]),
            (miniapp.page_prefix, miniapp.page_routers, [f"{miniapp.id} pages"]),
            *((root, [router], [miniapp.id]) for root, router in miniapp.root_routers.items()),
        ):
            for router in routers:
                for route in router.routes:
                    if not isinstance(route, APIRoute):
                        continue
                    for method in route.methods:
                        key = (method, prefix + route.path)
                        if key in seen:
                            raise ContractError(
                                f"mini-app '{miniapp.id}': route {method} {key[1]} is already served by "
                                f"'{seen[key]}'"
                            )
                        seen[key] = miniapp.id
                # Operation ids are namespaced too, so two mini-apps' ``list_items`` never collide.
                for route in router.routes:
                    if isinstance(route, APIRoute):
                        own = route.operation_id or route.name
                        if not own.startswith(f"{miniapp.id}__"):
                            route.operation_id = f"{miniapp.id}__{own}"
                app.include_router(
                    router, prefix=prefix, tags=tags, include_in_schema=not prefix.startswith("/m/")
                )
        if miniapp.static_dir is not None:
            app.mount(f"/static/m/{miniapp.id}", StaticFiles(directory=miniapp.static_dir),
                      name=f"static-{miniapp.id}")


def create_app_from_env() -> FastAPI:
    """The ASGI factory uvicorn workers call: settings and logging from the environment."""
    settings = load_settings()
    configure_logging(level=settings.log_level, json_logs=settings.log_json)
    return create_app(settings)
