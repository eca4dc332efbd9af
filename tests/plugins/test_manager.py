"""Discovery and loading: namespacing, allowlists, and loud failures naming the broken mini-app."""

from datetime import timedelta

import pytest
from sqlmodel import Field, SQLModel

from core.app import create_app
from plugins.events import DomainEvent
from plugins.manager import Candidate, find_candidates, load_miniapps, select
from plugins.registry import ContractError
from tests.conftest import base_settings
from tests.plugins.sample import candidate, manifest, routes_hook


def load(*candidates: Candidate, host: str = "1.0.0"):
    """Load candidates the way the host does."""
    return load_miniapps(candidates, host_version=host)[1]


def test_registrations_are_namespaced_under_the_id() -> None:
    def perms(register):
        register("things.read", description={"vi": "Đọc", "en": "Read"}, roles=["resident"])

    def jobs(register):
        register("tidy", lambda host: None, every=timedelta(minutes=5))

    [app] = load(candidate("sample", superapp_register_permissions=perms,
                           superapp_register_scheduled_jobs=jobs,
                           superapp_register_routes=routes_hook("/things")))
    assert [p.name for p in app.permissions] == ["sample.things.read"]
    assert [j.id for j in app.jobs] == ["sample.tidy"]
    assert app.api_prefix == "/api/miniapps/sample" and app.page_prefix == "/m/sample"
    assert app.api_routers[0].routes[0].path == "/things"


def test_misspelt_hook_stops_startup_naming_the_miniapp() -> None:
    bad = candidate("sample", superapp_register_route=lambda register: None)
    with pytest.raises(ContractError, match=r"mini-app 'sample'.*superapp_register_route"):
        load(bad)


def test_hook_with_wrong_argument_name_is_refused() -> None:
    bad = candidate("sample", superapp_register_routes=lambda registrar: None)
    with pytest.raises(ContractError, match="mini-app 'sample'"):
        load(bad)


def test_invalid_manifest_stops_startup_with_field() -> None:
    bad = candidate("sample", manifest_data=manifest(version="one"))
    with pytest.raises(ContractError, match=r"mini-app 'sample'.*field 'version'"):
        load(bad)


def test_two_miniapps_claiming_one_id() -> None:
    with pytest.raises(ContractError, match=r"'sample' is claimed twice: by built-in and by other-dist 1.0"):
        select([candidate("sample", source="built-in"), candidate("sample", source="other-dist 1.0")],
               allow=None, deny=[])


def test_import_error_names_the_miniapp() -> None:
    def broken():
        raise ImportError("No module named 'missing_dependency'")

    with pytest.raises(ContractError, match=r"mini-app 'broken' \(dist 2.0\) failed to import.*missing_dependency"):
        load(Candidate("broken", "dist 2.0", broken))


def test_newer_host_required_is_refused_clearly() -> None:
    bad = candidate("sample", manifest_data=manifest(min_host_version="1.4.0"))
    with pytest.raises(ContractError, match=r"field 'min_host_version': needs host contract 1.4.0, this host provides 1.0.0"):
        load(bad)


def test_registration_errors_name_the_miniapp() -> None:
    class Stray(SQLModel, table=True):
        __tablename__ = "not_prefixed_table"
        id: int | None = Field(default=None, primary_key=True)

    cases = {
        "superapp_register_models": (lambda register: register(Stray), "prefix 'sample_'"),
        "superapp_register_permissions": (
            lambda register: register("x", description={"vi": "x", "en": "x"}, roles=["mayor"]), "unknown role"),
        "superapp_register_event_subscribers": (lambda register: register(int, print), "not a DomainEvent"),
        "superapp_register_scheduled_jobs": (
            lambda register: register("j", lambda host: None, every=timedelta(0)), "at least one second"),
        "superapp_register_search_providers": (lambda register: register(lambda q: [], label={"vi": "x"}), "'en'"),
        "superapp_register_routes": (lambda register: register(api="not a router"), "APIRouter"),
    }
    for hook, (impl, message) in cases.items():
        with pytest.raises(ContractError, match="mini-app 'sample'") as info:
            load(candidate("sample", **{hook: impl}))
        assert message in str(info.value), hook


def test_hook_that_raises_is_reported_not_swallowed() -> None:
    def explode(register):
        raise RuntimeError("boom")

    with pytest.raises(ContractError, match="mini-app 'sample': superapp_register_routes raised RuntimeError: boom"):
        load(candidate("sample", superapp_register_routes=explode))


def test_subscriber_with_wrong_arity_is_refused() -> None:
    with pytest.raises(ContractError, match="2 positional"):
        load(candidate("sample", superapp_register_event_subscribers=lambda register: register(DomainEvent, lambda e: None)))


def test_allowlist_and_disabled_list() -> None:
    found = [candidate("alpha"), candidate("beta"), candidate("gamma")]
    assert [c.id for c in select(found, allow=["alpha", "gamma"], deny=["gamma"])] == ["alpha"]
    with pytest.raises(ContractError, match="not installed: delta"):
        select(found, allow=["alpha", "delta"], deny=[])


def test_entry_point_miniapp_is_discovered() -> None:
    found = {c.id: c for c in find_candidates(builtin_package=None, use_entry_points=True)}
    assert found["festival"].source.startswith("superapp-festival ")


def test_two_miniapps_cannot_serve_one_route(sqlite_url, monkeypatch) -> None:
    # Same id is impossible, so a clash means a mini-app registered one path twice.
    twice = candidate("sample", superapp_register_routes=lambda register: (
        routes_hook("/x")(register), routes_hook("/x")(register)))
    monkeypatch.setattr("core.app.find_candidates", lambda **_: [twice])
    with pytest.raises(ContractError, match=r"route GET /api/miniapps/sample/x is already served by 'sample'"):
        create_app(base_settings(database_url=sqlite_url))


def test_reserved_ids_are_refused(sqlite_url, monkeypatch) -> None:
    monkeypatch.setattr("core.app.find_candidates", lambda **_: [candidate("static")])
    with pytest.raises(ContractError, match="reserved"):
        create_app(base_settings(database_url=sqlite_url))


def test_route_checking_an_undeclared_permission_stops_startup(sqlite_url, monkeypatch) -> None:
    from fastapi import APIRouter

    from core.identity.authz import require_permission

    def routes(register):
        api = APIRouter()
        api.add_api_route("/x", lambda: {}, methods=["POST"], dependencies=[require_permission("sample.thing.edit")])
        register(api=api)

    monkeypatch.setattr("core.app.find_candidates", lambda **_: [candidate("sample", superapp_register_routes=routes)])
    with pytest.raises(ContractError, match=r"mini-app 'sample': route\(s\) check undeclared permission\(s\) \['sample.thing.edit'\]"):
        create_app(base_settings(database_url=sqlite_url))
