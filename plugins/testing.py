"""The contract test kit: checks every mini-app, built-in or third-party, must pass in its own tests.

Use it from a mini-app's tests::

    from plugins.testing import check_miniapp

    def test_contract(tmp_path):
        check_miniapp("festival", tmp_path)

Each check raises ``AssertionError`` with a message that names the mini-app and what to fix.

For the mini-app's own behaviour tests, ``miniapp_client(id, tmp_path)`` gives a test client of a
migrated host (SQLite, Hue's units loaded) serving only that mini-app, and ``sign_in(client, ...)``
gives the headers of a resident or an official.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute

from plugins.manifest import validate_manifest
from plugins.registry import PERMISSION_NAME, MiniApp


def _host(miniapp_id: str, tmp_path: Path, database_url: str | None = None) -> tuple[Any, MiniApp]:
    from config import Settings
    from core.app import create_app

    settings = Settings(
        env="test", secret_key="contract-kit-secret-0123456789abcdef", scheduler_enabled=False, log_json=False,
        database_url=database_url or f"sqlite:///{tmp_path / 'contract.db'}", miniapps=[miniapp_id], var_dir=tmp_path,
    )
    app = create_app(settings)
    [miniapp] = [m for m in app.state.miniapps if m.id == miniapp_id]
    return app, miniapp


@contextmanager
def miniapp_client(miniapp_id: str, tmp_path: Path, database_url: str | None = None) -> Iterator[Any]:
    """A ``TestClient`` of a host serving only ``miniapp_id``, its database (SQLite in ``tmp_path`` unless
    ``database_url`` names one, e.g. the ``superapp_database_url`` fixture's) migrated and Hue's units loaded."""
    from fastapi.testclient import TestClient
    from sqlmodel import Session

    from core.migrate import upgrade
    from core.units.service import load_reference_units

    app, miniapp = _host(miniapp_id, tmp_path, database_url)
    upgrade(app.state.engine, [miniapp])
    with Session(app.state.engine) as session:
        load_reference_units(session)
    with TestClient(app) as client:
        yield client


def sign_in(client: Any, *, role: str = "resident", unit: str = "phu-xuan", name: str | None = None) -> dict[str, str]:
    """Headers of a new account signed in on ``client``'s host: a resident living in ``unit`` or an official
    holding ``role`` there (``commune_official``, ``department_official``, ``operator``, ``admin``)."""
    from sqlmodel import Session

    from core.identity import service

    app = client.app
    serial = next(_accounts)
    with Session(app.state.engine, expire_on_commit=False) as db:
        if role == "resident":
            user = service.find_or_create_resident(db, firebase_uid=f"kit-{serial}", phone=f"+8490999{serial:04d}",
                                                   address="127.0.0.1")
            user.home_unit_id = unit
            db.add(user)
            db.commit()
        else:
            user = service.create_official(db, username=name or f"kit.{role}.{serial}", display_name=f"Kit {role}",
                                           password="Kit-Official-2025-pass", memberships=[(role, unit)])
        pair = service.start_session(db, secret=app.state.settings.secret_key, user=user, method="test",
                                     client="contract-kit", address="127.0.0.1")
    return {"Authorization": f"Bearer {pair.access_token}"}


_accounts = itertools.count(1)


def check_manifest(miniapp: MiniApp) -> None:
    """The manifest validates and its id is the mini-app's id."""
    validate_manifest(miniapp.manifest.model_dump(mode="json"), miniapp=miniapp.id)


def check_routes_namespaced(app: Any, miniapp: MiniApp) -> None:
    """Every route of the mini-app lives under /api/miniapps/<id>/, /m/<id>/ or a root its manifest declares."""
    assert miniapp.api_routers or miniapp.page_routers, f"mini-app '{miniapp.id}' registers no routes"
    spec = app.openapi()
    homes = (miniapp.api_prefix, *miniapp.manifest.roots)
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            if operation.get("operationId", "").startswith(f"{miniapp.id}__"):
                assert any(path == home or path.startswith(home + "/") for home in homes), (
                    f"mini-app '{miniapp.id}': route {path} is outside {miniapp.api_prefix}/ and its declared roots"
                )
    for router in miniapp.api_routers + miniapp.page_routers:
        for route in router.routes:
            assert isinstance(route, APIRoute), f"mini-app '{miniapp.id}': {route!r} is not an API route"
            assert route.path.startswith("/"), f"mini-app '{miniapp.id}': route path {route.path!r} must start with /"


def check_permissions(miniapp: MiniApp) -> None:
    """Permissions are namespaced, well named and described in both languages."""
    for permission in miniapp.permissions:
        assert permission.name.startswith(f"{miniapp.id}."), permission.name
        assert PERMISSION_NAME.match(permission.name), permission.name
        assert permission.description.vi and permission.description.en


def check_pages_render(app: Any, miniapp: MiniApp) -> None:
    """The entry page renders in Vietnamese and in English, with the page's language declared."""
    if not miniapp.page_routers:
        return
    from fastapi.testclient import TestClient

    url = miniapp.page_prefix + miniapp.manifest.entry_page
    with TestClient(app) as client:
        for locale in ("vi", "en"):
            response = client.get(url, params={"lang": locale})
            assert response.status_code == 200, (
                f"mini-app '{miniapp.id}': entry page {url}?lang={locale} answered {response.status_code}"
            )
            assert re.search(rf'<html[^>]*lang="{locale}"', response.text), (
                f"mini-app '{miniapp.id}': entry page in {locale!r} must declare <html lang=\"{locale}\"> "
                "(extend shell/base.html)"
            )


def check_migrations_match_models(app: Any, miniapp: MiniApp) -> None:
    """The migration branch creates exactly the tables the models declare."""
    from core.migrate import drift, upgrade

    if not miniapp.models:
        return
    assert miniapp.migrations_dir is not None, (
        f"mini-app '{miniapp.id}' declares models but no migrations folder"
    )
    engine = app.state.engine
    upgrade(engine, [miniapp])
    differences = drift(engine, [miniapp])
    assert differences == [], f"mini-app '{miniapp.id}': models and migrations differ: {differences}"


def check_callables(miniapp: MiniApp) -> None:
    """Subscribers, jobs, feed contributors and search providers are callables the host can call."""
    for subscriber in miniapp.subscribers:
        assert callable(subscriber.handler)
    for job in miniapp.jobs:
        assert job.id.startswith(f"{miniapp.id}.") and callable(job.run)
    for provider in miniapp.search_providers:
        assert callable(provider.search) and provider.label.vi and provider.label.en


def check_search_providers(app: Any, miniapp: MiniApp) -> None:
    """Each search provider answers an anonymous search with well-formed results linking into the app."""
    import asyncio

    from core.identity.principal import Principal
    from core.search import fan_out
    from plugins.search import SearchQuery

    if not miniapp.search_providers:
        return
    query = SearchQuery(text="Huế", folded="hue", locale="vi", principal=Principal(), host=app.state.host, limit=5)
    for outcome in asyncio.run(fan_out(miniapp.search_providers, query, budget=5.0)):
        assert outcome.status == "ok", (
            f"mini-app '{miniapp.id}': its search provider answered with an {outcome.status} (see the log); it "
            "must return a list of plugins.search.SearchResult (or dicts of that shape) within the time budget"
        )
        for result in outcome.results:
            assert result.url.startswith("/"), (
                f"mini-app '{miniapp.id}': search result url {result.url!r} must be a path in this app"
            )


def check_settings(app: Any, miniapp: MiniApp) -> None:
    """A settings model builds from its defaults and every field becomes a form input."""
    if miniapp.settings_model is None:
        return
    from core.miniapp_settings.routes import form_fields

    miniapp.settings_model()
    fields = form_fields(app.state.miniapp_settings, miniapp.id)
    assert {f["name"] for f in fields} == set(miniapp.settings_model.model_fields), (
        f"mini-app '{miniapp.id}': some settings cannot be shown on the settings form"
    )


def check_miniapp(miniapp_id: str, tmp_path: Path, database_url: str | None = None) -> None:
    """Run every contract check on the installed mini-app ``miniapp_id`` (on ``database_url``, else SQLite)."""
    app, miniapp = _host(miniapp_id, tmp_path, database_url)
    check_manifest(miniapp)
    check_routes_namespaced(app, miniapp)
    check_permissions(miniapp)
    check_callables(miniapp)
    check_migrations_match_models(app, miniapp)
    check_settings(app, miniapp)
    check_search_providers(app, miniapp)
    check_pages_render(app, miniapp)
