"""The SDK: every public name resolves, and a contract 1.1 package that imports host paths loads, warned once."""

from __future__ import annotations

import importlib
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import plugins
from plugins import _compat
from plugins.manager import Candidate, load_miniapps
from tests.plugins.sample import manifest


def test_every_public_name_resolves_and_the_host_loads_lazily() -> None:
    missing = [name for name in plugins.__all__ if getattr(plugins, name, None) is None]
    assert missing == []
    assert sorted(plugins.__all__) == plugins.__all__ and len(set(plugins.__all__)) == len(plugins.__all__)
    with pytest.raises(AttributeError, match="no attribute 'SessionDepp'"):
        plugins.SessionDepp  # noqa: B018


def test_the_sdk_names_are_the_hosts_own_objects() -> None:
    from core.db import SessionDep
    from core.errors import Problem
    from core.units.models import OrgUnit

    assert plugins.SessionDep is SessionDep and plugins.OrgUnit is OrgUnit
    assert plugins.DomainError is Problem  # one error type, one handler


def _old_style_package(root: Path, name: str) -> None:
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(f"""
        from plugins import hookimpl
        from core.db import SessionDep
        from core.errors import Problem
        from core.identity.models import User

        @hookimpl
        def superapp_manifest():
            return {manifest(id=name, min_host_version="1.1.0")!r}
    """))


def test_a_contract_1_1_package_loads_and_each_old_path_warns_once(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(_compat, "_warned", set())
    _old_style_package(tmp_path, "oldstyle")
    candidate = Candidate("oldstyle", "tests", lambda: importlib.import_module("oldstyle"))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            [miniapp] = load_miniapps([candidate], host_version=plugins.CONTRACT_VERSION)[1]
            load_miniapps([candidate], host_version=plugins.CONTRACT_VERSION)
    finally:
        sys.modules.pop("oldstyle", None)
    assert miniapp.id == "oldstyle"
    messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(messages) == 3, messages  # three old paths, each once although the package loaded twice
    assert any("core.db.SessionDep: import plugins.SessionDep instead" in m for m in messages)
    assert any("core.errors.Problem: import plugins.DomainError instead" in m for m in messages)
    assert any("core.identity.models.User: import plugins.User instead" in m for m in messages)


def test_the_built_in_miniapps_import_no_host_path() -> None:
    import miniapps

    root = Path(miniapps.__file__).parent
    found = []
    for package in sorted(p for p in root.iterdir() if (p / "__init__.py").exists()):
        module = importlib.import_module(f"miniapps.{package.name}")
        found += [(package.name, old, name) for _, old, name in _compat.host_imports(module)]
    assert found == []


def test_every_sdk_name_has_a_docs_entry() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "miniapps.md").read_text(encoding="utf-8")
    section = docs.split("## The SDK: what a mini-app imports", 1)[1].split("\n## ", 1)[0]
    undocumented = [name for name in plugins.__all__ if f"`{name}`" not in section and f"`{name}(" not in section]
    assert undocumented == [], f"add these SDK names to docs/miniapps.md, 'The SDK': {undocumented}"
