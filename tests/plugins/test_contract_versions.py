"""The versioned contract: min_host_version, and the deprecation path of changed hooks (warn, then refuse)."""

from __future__ import annotations

import pytest
from fastapi import APIRouter

from plugins import hookspecs
from plugins.hookspecs import Deprecation
from plugins.manager import load_miniapps
from plugins.registry import ContractError
from plugins.search import SearchResult
from tests.plugins.sample import candidate, manifest

# As if 1.1 had renamed superapp_register_search_providers from an older superapp_register_search.
RENAMED = Deprecation(hook="superapp_register_search", replacement="superapp_register_search_providers",
                      since="1.1.0", removed_in="1.3.0", how="rename the function; its register is the same")


def _old_style():
    def superapp_register_search(register):
        register(lambda query: [SearchResult(title="old", url="/m/sample/")], label={"vi": "Cũ", "en": "Old"})

    return candidate("sample", superapp_register_search=superapp_register_search)


@pytest.fixture
def renamed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(hookspecs.DEPRECATED_HOOKS, RENAMED.hook, RENAMED)


def test_a_deprecated_hook_still_works_and_warns_with_the_fix(renamed: None) -> None:
    with pytest.warns(DeprecationWarning, match=r"mini-app 'sample'.*superapp_register_search is deprecated since "
                                                r"contract 1\.1\.0.*from 1\.3\.0.*superapp_register_search_providers"):
        [miniapp] = load_miniapps([_old_style()], host_version="1.2.0")[1]
    assert [p.label.en for p in miniapp.search_providers] == ["Old"]  # called through the new hook's register
    assert miniapp.deprecated_hooks == [RENAMED]


def test_a_deprecated_hook_is_refused_once_removed(renamed: None) -> None:
    with pytest.raises(ContractError, match=r"mini-app 'sample'.*removed in contract 1\.3\.0; implement "
                                            r"superapp_register_search_providers instead"):
        load_miniapps([_old_style()], host_version="1.3.0")


def test_without_a_deprecation_entry_an_unknown_hook_stops_start_up() -> None:
    with pytest.raises(ContractError, match="superapp_register_search"):
        load_miniapps([_old_style()], host_version="1.1.0")


@pytest.mark.parametrize(("needed", "host", "loads"), [
    ("1.0.0", "1.1.0", True), ("1.1.0", "1.1.0", True), ("1.2.0", "1.1.0", False), ("2.0.0", "1.1.0", False),
    ("1.0.0", "2.0.0", False),
])
def test_min_host_version_is_enforced_with_the_field_named(needed: str, host: str, loads: bool) -> None:
    sample = candidate("sample", manifest_data=manifest(id="sample", min_host_version=needed))
    if loads:
        assert load_miniapps([sample], host_version=host)[1]
    else:
        with pytest.raises(ContractError, match=rf"field 'min_host_version': needs host contract {needed}, "
                                                rf"this host provides {host}"):
            load_miniapps([sample], host_version=host)


def test_the_host_reports_its_contract_version(client) -> None:
    assert client.get("/api/miniapps").json()["contract_version"] == hookspecs.CONTRACT_VERSION == "1.3.0"


def test_a_root_must_be_declared_and_must_not_shadow_core(settings) -> None:
    router = APIRouter()
    router.get("/v2/discovery.json")(lambda: {})
    undeclared = candidate("sample", superapp_register_routes=lambda register: register(roots={"/open311": router}))
    with pytest.raises(ContractError, match=r"root '/open311' is not declared in the manifest's 'roots'"):
        load_miniapps([undeclared], host_version="1.1.0")

    from fastapi import FastAPI

    from core.app import _mount_miniapps

    for root in ("/auth", "/static"):
        data = manifest(id="sample", roots=[root])
        shadowing = candidate("sample", manifest_data=data,
                              superapp_register_routes=lambda register, r=root: register(roots={r: router}))
        [miniapp] = load_miniapps([shadowing], host_version="1.1.0")[1]
        with pytest.raises(ContractError, match=rf"root {root} is already used by 'core'"):
            _mount_miniapps(FastAPI(), [miniapp])


@pytest.mark.parametrize("path", ["layer.json", "/items/{id}", "/layer.json?x=1"])
def test_an_answer_before_routing_needs_a_literal_path(path: str) -> None:
    sample = candidate("sample", superapp_register_routes=lambda register: register(before_routing={path: lambda r: None}))
    with pytest.raises(ContractError, match=r"register\(before_routing=.*needs a literal path"):
        load_miniapps([sample], host_version="1.3.0")


def test_an_answer_before_routing_needs_a_get_route_for_what_it_leaves() -> None:
    router = APIRouter()
    router.get("/layer.json")(lambda: {})
    router.post("/posted.json")(lambda: {})
    sample = candidate("sample", superapp_register_routes=lambda register: register(
        api=router, before_routing={"/layer.json": lambda r: None}))
    assert load_miniapps([sample], host_version="1.3.0")[1][0].answers_before_routing
    for path in ("/other.json", "/posted.json"):
        orphan = candidate("sample", superapp_register_routes=lambda register, p=path: register(
            api=router, before_routing={p: lambda r: None}))
        with pytest.raises(ContractError, match=rf"before_routing=\{{'{path}'.*no GET route"):
            load_miniapps([orphan], host_version="1.3.0")
