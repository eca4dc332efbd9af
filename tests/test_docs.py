"""Checks that keep the documentation true to the code.

- docs/hooks.md has a section for every hook in plugins/hookspecs.py and none for a hook that does not
  exist, and every example on that page registers cleanly with a real host;
- the manifest reference in docs/miniapps.md names every manifest field;
- the tutorial in docs/miniapps.md, extracted file by file, builds a mini-app that passes its own
  tests (the contract kit among them);
- every relative link in docs/*.md and README.md points to an existing file (and heading).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
import tomllib
import types
from pathlib import Path
from typing import Any

import pytest

import core.app
from core.app import RESERVED_IDS, create_app
from plugins import hookspecs
from plugins.manager import Candidate
from plugins.manifest import Audience, Developer, Manifest, NotificationTopic, Placement, Scope, ScopeRequest
from plugins.registry import ROLES
from tests.conftest import base_settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```.*?^```[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
TUTORIAL_FILE = re.compile(r"^\*\*`([^`]+)`\*\*\n\n```[a-z]*\n(.*?)\n```$", re.M | re.S)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _without_code(markdown: str) -> str:
    """The text with fenced blocks removed, so code never counts as a heading or a link."""
    return FENCE.sub("", markdown)


def _section(markdown: str, heading: str) -> str:
    """The body of the level-2 section titled ``heading``, up to the next level-2 heading."""
    match = re.search(rf"^## {re.escape(heading)}[ \t]*\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"no '## {heading}' section"
    return match.group(1)


# --- docs/hooks.md ----------------------------------------------------------------------------------


def _hook_names() -> set[str]:
    return {
        name for name, func in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("superapp_") and hasattr(func, "superapp_spec")
    }


def test_hookspecs_are_found() -> None:
    assert "superapp_manifest" in _hook_names() and len(_hook_names()) >= 2


def test_every_hook_has_a_section_in_hooks_md() -> None:
    headings = set(re.findall(r"^## (\S+)[ \t]*$", _without_code(_read(DOCS / "hooks.md")), re.M))
    missing = sorted(_hook_names() - headings)
    assert not missing, f"docs/hooks.md has no '## <hook>' section for {missing}"


def test_hooks_md_documents_no_hook_that_does_not_exist() -> None:
    headings = re.findall(r"^## (superapp_\w*)", _without_code(_read(DOCS / "hooks.md")), re.M)
    unknown = sorted(set(headings) - _hook_names())
    assert not unknown, f"docs/hooks.md documents hooks that plugins/hookspecs.py lacks: {unknown}"
    assert len(headings) == len(set(headings)), "a hook has two sections in docs/hooks.md"


EXAMPLE_MANIFEST: dict[str, Any] = {
    "id": "toilets",
    "name": {"vi": "Nhà vệ sinh công cộng", "en": "Public toilets"},
    "description": {"vi": "Bản đồ nhà vệ sinh công cộng.", "en": "A map of public toilets."},
    "icon": "🚻",
    "version": "0.1.0",
    "min_host_version": hookspecs.CONTRACT_VERSION,
    "audiences": ["resident"],
    "public": True,
    "developer": {"name": "Docs"},
}


def _hook_examples() -> list[str]:
    return re.findall(r"^```python\n(.*?)\n```$", _read(DOCS / "hooks.md"), re.M | re.S)


def test_hooks_md_has_an_example_per_hook() -> None:
    examples = _hook_examples()
    for hook in _hook_names():
        assert any(f"def {hook}(" in code for code in examples), f"docs/hooks.md has no example of {hook}"


@pytest.mark.parametrize("index", range(len(_hook_examples())))
def test_hook_example_registers_with_a_real_host(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each example, run as the module of a mini-app 'toilets', passes every start-up check."""
    import json

    code = _hook_examples()[index]
    package = tmp_path / "superapp_toilets"
    for folder in ("templates", "static", "migrations"):
        (package / folder).mkdir(parents=True)
    (package / "manifest.json").write_text(json.dumps(EXAMPLE_MANIFEST), encoding="utf-8")
    module = types.ModuleType(f"docs_hook_example_{index}")
    module.__file__ = str(package / "__init__.py")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # as an imported mini-app is (pydantic looks there)
    exec(compile(code, f"docs/hooks.md example {index + 1}", "exec"), module.__dict__)  # noqa: S102 - our own docs
    if not hasattr(module, "superapp_manifest"):
        module.superapp_manifest = lambda: EXAMPLE_MANIFEST  # type: ignore[attr-defined]
    monkeypatch.setattr(core.app, "find_candidates",
                        lambda **_: [Candidate("toilets", "docs example", lambda: module)])

    app = create_app(base_settings(database_url=f"sqlite:///{tmp_path / 'docs.db'}"))

    [miniapp] = app.state.miniapps
    registered = {
        "superapp_register_models": miniapp.models,
        "superapp_register_permissions": miniapp.permissions,
        "superapp_register_routes": miniapp.api_routers + miniapp.page_routers,
        "superapp_register_event_subscribers": miniapp.subscribers,
        "superapp_register_feed_contributors": miniapp.feed_contributors,
        "superapp_register_scheduled_jobs": miniapp.jobs,
        "superapp_register_search_providers": miniapp.search_providers,
        "superapp_register_demo_data": miniapp.demo_loaders,
        "superapp_register_channels": miniapp.channels,
        "superapp_register_settings": [miniapp.settings_model] if miniapp.settings_model else [],
    }
    assert set(registered) | {"superapp_manifest"} == _hook_names(), "update this test for the new hook"
    for hook, found in registered.items():
        if f"def {hook}(" in code:
            assert found, f"docs/hooks.md example {index + 1}: {hook} registered nothing"


# --- docs/miniapps.md: the manifest reference -----------------------------------------------------------


def _manifest_reference() -> str:
    return _section(_read(DOCS / "miniapps.md"), "Manifest reference")


def _described(reference: str, name: str) -> bool:
    """True when a table row of the reference starts with the field's name."""
    return re.search(rf"^\| `{re.escape(name)}` \|", reference, re.M) is not None


def test_manifest_reference_names_every_field() -> None:
    reference = _manifest_reference()
    missing = [name for name in Manifest.model_fields if not _described(reference, name)]
    assert not missing, f"the manifest reference in docs/miniapps.md has no table row for {missing}"
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", reference, re.M))
    unknown = sorted(documented - set(Manifest.model_fields))
    assert not unknown, f"the manifest reference in docs/miniapps.md describes fields Manifest lacks: {unknown}"


def test_manifest_reference_names_every_nested_field() -> None:
    reference = _manifest_reference()
    nested = {"scopes[].": ScopeRequest, "notification_topics[].": NotificationTopic, "developer.": Developer}
    missing = [prefix + name for prefix, model in nested.items() for name in model.model_fields
               if not _described(reference, prefix + name)]
    assert not missing, f"the manifest reference in docs/miniapps.md has no table row for {missing}"
    assert "`vi`" in reference and "`en`" in reference


def test_manifest_reference_lists_allowed_values() -> None:
    reference = _manifest_reference()
    values = [*Audience, *Scope, *Placement, *RESERVED_IDS]
    missing = sorted({str(v) for v in values if f"`{v}`" not in reference})
    assert not missing, f"the manifest reference in docs/miniapps.md does not list {missing}"


def test_roles_in_docs_match_the_registry() -> None:
    hooks = _section(_read(DOCS / "hooks.md"), "superapp_register_permissions")
    assert all(f"`{role}`" in hooks for role in ROLES), f"docs/hooks.md should list the roles {ROLES}"


# --- docs/miniapps.md: the tutorial -------------------------------------------------------------------


def _tutorial_files() -> dict[str, str]:
    return {path: body + "\n" for path, body in TUTORIAL_FILE.findall(_read(DOCS / "miniapps.md"))}


def test_tutorial_gives_every_file_of_the_layout() -> None:
    files = _tutorial_files()
    package = "src/superapp_lostfound/"
    expected = {"pyproject.toml", "tests/test_lostfound.py"} | {
        package + name for name in ("__init__.py", "manifest.json", "models.py", "service.py", "routes.py")
    }
    assert expected <= set(files), f"tutorial files missing from docs/miniapps.md: {sorted(expected - set(files))}"
    assert any(p.startswith(package + "templates/") for p in files)
    assert any(p.startswith(package + "migrations/") for p in files)


def test_tutorial_entry_point_matches_its_manifest() -> None:
    import json

    files = _tutorial_files()
    project = tomllib.loads(files["pyproject.toml"])
    entry_points = project["project"]["entry-points"]["superapp.miniapps"]
    manifest = json.loads(files["src/superapp_lostfound/manifest.json"])
    assert entry_points == {manifest["id"]: "superapp_lostfound"}
    data = project["tool"]["setuptools"]["package-data"]["superapp_lostfound"]
    for needed in ("manifest.json", "templates", "static", "migrations"):
        assert any(pattern.startswith(needed) for pattern in data), f"package-data lacks {needed}"
    [migration] = [body for path, body in files.items() if "/migrations/" in path]
    assert f'branch_labels = ("{manifest["id"]}",)' in migration and 'depends_on = "core_0001"' in migration


def test_tutorial_miniapp_passes_its_own_tests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write the tutorial's files as given, load the package as the host would, run its test module."""
    project = tmp_path / "superapp-lostfound"
    for relative, body in _tutorial_files().items():
        target = project / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body, encoding="utf-8")
    monkeypatch.syspath_prepend(str(project / "src"))
    _forget("superapp_lostfound")
    try:
        package = importlib.import_module("superapp_lostfound")
        assert Path(package.__file__).is_relative_to(project), "an installed superapp_lostfound shadows the docs"
        # What the entry point would give the host, without installing anything.
        monkeypatch.setattr(core.app, "find_candidates",
                            lambda **_: [Candidate("lostfound", "superapp-lostfound 0.1.0", lambda: package)])
        spec = importlib.util.spec_from_file_location("docs_tutorial_tests", project / "tests" / "test_lostfound.py")
        assert spec and spec.loader
        tests = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tests)
        ran = []
        for name, test in vars(tests).items():
            if name.startswith("test_") and callable(test):
                workdir = tmp_path / name
                workdir.mkdir()
                test(**_kit_arguments(test, workdir))
                ran.append(name)
        assert "test_passes_the_contract_kit" in ran
    finally:
        _forget("superapp_lostfound")


def _kit_arguments(test: Any, workdir: Path) -> dict[str, Any]:
    """What pytest and the kit's plugin (plugins.pytest_plugin) would pass, on SQLite in ``workdir``."""
    from plugins.testing import miniapp_client

    url = f"sqlite:///{workdir / 'kit.db'}"
    known = {"tmp_path": workdir, "superapp_database_url": url,
             "superapp_client": lambda miniapp_id: miniapp_client(miniapp_id, workdir, database_url=url)}
    return {name: known[name] for name in inspect.signature(test).parameters}


def _forget(package: str) -> None:
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


# --- Links -----------------------------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+?)[ \t]*$", _without_code(_read(path)), re.M):
        slug = _slug(heading)
        candidate, n = slug, 0
        while candidate in anchors:
            n += 1
            candidate = f"{slug}-{n}"
        anchors.add(candidate)
    return anchors


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def test_docs_exist() -> None:
    for name in ("architecture.md", "miniapps.md", "hooks.md"):
        assert (DOCS / name).is_file(), f"docs/{name} is missing"


@pytest.mark.parametrize("document", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(document: Path) -> None:
    text = INLINE_CODE.sub("", _without_code(_read(document)))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: ...
            continue
        path_part, _, anchor = target.partition("#")
        linked = (document.parent / path_part).resolve() if path_part else document
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target} (no heading with anchor #{anchor})")
    assert not broken, f"{document.relative_to(ROOT)} has broken links: {broken}"
