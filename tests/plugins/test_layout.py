"""One inner layout for every mini-app (docs/miniapps.md, "The layout of a mini-app"): the scaffold's
package, the four built-ins and the festival sample have the required files, name every module for its
role or list it as a concern module, and keep only hooks in ``__init__.py``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from core.scaffold import create_miniapp
from tests.test_docs import _read, _section

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = _section(_read(ROOT / "docs" / "miniapps.md"), "The layout of a mini-app")
SAMPLE = ROOT / "tests" / "thirdparty" / "superapp_festival" / "src" / "superapp_festival"
BUILT_INS = sorted(path.parent for path in (ROOT / "miniapps").glob("*/__init__.py"))
IGNORED = {"__pycache__"}


def _roles() -> dict[str, str]:
    """Each path of the layout table and when it is needed (``always``, ``with tables``, ``optional``...)."""
    rows = re.findall(r"^\| `([\w.]+/?)` \| .*? \| ([\w ]+) \|$", LAYOUT, re.M)
    assert len(rows) >= 8, "docs/miniapps.md's layout table has too few rows to be the layout"
    return dict(rows)


def _concern_modules() -> dict[str, set[str]]:
    """The concern modules each built-in lists in the docs."""
    table = LAYOUT.split("| mini-app | concern modules |", 1)[1]
    return {miniapp: set(re.findall(r"`(\w+)`", modules))
            for miniapp, modules in re.findall(r"^\| `(\w+)` \| (.*) \|$", table, re.M)}


def _scaffolded(tmp_path: Path) -> Path:
    return create_miniapp("parking", tmp_path) / "src" / "superapp_parking"


def _subjects(tmp_path: Path) -> list[tuple[str, Path]]:
    return ([(package.name, package) for package in BUILT_INS]
            + [("festival", SAMPLE), ("parking", _scaffolded(tmp_path))])


def _misfits(miniapp_id: str, package: Path, concern: set[str]) -> list[str]:
    """Where ``package`` leaves the layout, one sentence each."""
    roles = _roles()
    present = {entry.name for entry in package.iterdir() if entry.name not in IGNORED}
    entries = {entry.name + ("/" if entry.is_dir() else "") for entry in package.iterdir() if entry.name not in IGNORED}
    problems = [f"{package.name}/{name} is required" for name, needed in roles.items()
                if needed == "always" and name.rstrip("/") not in present]
    if ("models.py" in present) != ("migrations" in present):
        problems.append(f"{package.name}: models.py and migrations/ go together")
    allowed = set(roles) | {f"{module}.py" for module in concern}
    problems += [f"{package.name}/{name} is outside the layout: name it for its role, or list it among "
                 f"'{miniapp_id}''s concern modules in docs/miniapps.md" for name in sorted(entries - allowed)]
    if "migrations" in present:
        problems += [f"{package.name}/migrations/{revision.name} should be named {miniapp_id}_NNNN_<what>.py"
                     for revision in sorted((package / "migrations").glob("*.py"))
                     if not re.fullmatch(rf"{miniapp_id}_\d{{4}}_\w+\.py", revision.name)]
    if "templates" in present:
        inside = {entry.name for entry in (package / "templates").iterdir()}
        folders = {entry.name for entry in (package / "templates").iterdir() if entry.is_dir()}
        if folders and inside != {miniapp_id}:
            problems.append(f"{package.name}/templates holds {sorted(inside)}: either the templates themselves "
                            f"or one folder named '{miniapp_id}'")
    hooks = ast.parse((package / "__init__.py").read_text(encoding="utf-8"))
    problems += [f"{package.name}/__init__.py defines {node.name}: only hooks live there" for node in hooks.body
                 if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                 and not node.name.startswith("superapp_")]
    return problems


def test_the_layout_is_documented() -> None:
    roles = _roles()
    assert {name for name, needed in roles.items() if needed == "always"} == {
        "__init__.py", "manifest.json", "service.py", "routes.py"}
    assert {"models.py", "migrations/", "templates/", "static/", "pages.py"} <= set(roles)
    assert set(_concern_modules()) == {package.name for package in BUILT_INS}, (
        "docs/miniapps.md lists concern modules for mini-apps that are not the built-ins")


@pytest.mark.parametrize("miniapp_id", [package.name for package in BUILT_INS] + ["festival", "parking"])
def test_every_miniapp_follows_the_layout(miniapp_id: str, tmp_path: Path) -> None:
    package = dict(_subjects(tmp_path))[miniapp_id]
    problems = _misfits(miniapp_id, package, _concern_modules().get(miniapp_id, set()))
    assert not problems, "; ".join(problems)


@pytest.mark.parametrize("miniapp_id", [package.name for package in BUILT_INS])
def test_every_listed_concern_module_exists(miniapp_id: str) -> None:
    missing = sorted(module for module in _concern_modules()[miniapp_id]
                     if not (ROOT / "miniapps" / miniapp_id / f"{module}.py").is_file())
    assert not missing, f"docs/miniapps.md lists concern modules of '{miniapp_id}' that do not exist: {missing}"


def test_a_stray_module_is_named(tmp_path: Path) -> None:
    """The check itself: a module outside the layout, a helper in __init__.py, a misnamed revision."""
    package = _scaffolded(tmp_path)
    (package / "helpers.py").write_text('"""Odds and ends."""\n')
    (package / "migrations" / "0002_more.py").write_text("")
    with (package / "__init__.py").open("a", encoding="utf-8") as hooks:
        hooks.write("\n\ndef tidy():\n    return None\n")
    problems = _misfits("parking", package, set())
    assert problems == [
        "superapp_parking/helpers.py is outside the layout: name it for its role, or list it among 'parking''s "
        "concern modules in docs/miniapps.md",
        "superapp_parking/migrations/0002_more.py should be named parking_NNNN_<what>.py",
        "superapp_parking/__init__.py defines tidy: only hooks live there",
    ]
    assert _misfits("parking", package, {"helpers"})[0].startswith("superapp_parking/migrations/0002_more.py")


MODULE_LIMIT = 700  # docs/miniapps.md: work that outgrows about 700 lines is split by concern


def test_no_miniapp_module_outgrows_the_limit() -> None:
    """Every module of a built-in stays within the limit; a longer one is split by concern."""
    long = {str(path.relative_to(ROOT)): lines for package in BUILT_INS for path in sorted(package.rglob("*.py"))
            if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MODULE_LIMIT}
    assert not long, f"modules over {MODULE_LIMIT} lines, to split by concern: {long}"
