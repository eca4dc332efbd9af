"""Checks that keep the documentation true to the code.

- docs/hooks.md has a section for every hook in plugins/hookspecs.py and none for a hook that does not
  exist, and every example on that page registers cleanly with a real host;
- each hook's signature and its ``register(...)`` on that page match the spec and the callback the host
  passes (plugins.manager.REGISTRATION_HOOKS), every ``register(...)`` call shown binds to it, and the
  table and the registration order (hooks.md, architecture.md, each '**When:**') follow the host's;
- the manifest reference in docs/miniapps.md names every manifest field;
- the tutorial in docs/miniapps.md, extracted file by file, builds a mini-app that passes its own
  tests (the contract kit among them);
- every relative link in docs/*.md and README.md points to an existing file (and heading).
"""

from __future__ import annotations

import ast
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
        "superapp_register_inbox_prompts": miniapp.inbox_prompts,
        "superapp_register_demo_data": miniapp.demo_loaders,
        "superapp_register_channels": miniapp.channels,
        "superapp_register_settings": [miniapp.settings_model] if miniapp.settings_model else [],
    }
    assert set(registered) | {"superapp_manifest"} == _hook_names(), "update this test for the new hook"
    for hook, found in registered.items():
        if f"def {hook}(" in code:
            assert found, f"docs/hooks.md example {index + 1}: {hook} registered nothing"


# --- docs/hooks.md: each hook's signature and its register(...) ------------------------------------------
# The host hands every registration hook a callback (plugins.manager.REGISTRATION_HOOKS); what the page shows
# for it must be what the callback accepts, so changing a parameter, its kind, its default or its type
# fails here until the page says so.

SIGNATURE_BLOCK = re.compile(r"\A.*?^```\n(?P<hook>superapp_\w+\(.*?\) -> [^\n]+)\n(?:(?P<register>register\(.*?\) -> "
                             r"[^\n]+)\n)?```$", re.M | re.S)
NAME = re.compile(r"[A-Za-z_][\w.]*")


def _registration_callbacks() -> dict[str, type]:
    from plugins.manager import REGISTRATION_HOOKS

    return dict(REGISTRATION_HOOKS)


def _signature_lines(hook: str) -> tuple[str, str | None]:
    """The hook's own line and its ``register(...)`` lines, from the first plain code block of its section."""
    match = SIGNATURE_BLOCK.match(_section(_read(DOCS / "hooks.md"), hook))
    assert match, f"docs/hooks.md: the '## {hook}' section does not open with its signature block"
    return match["hook"], match["register"]


def _documented(line: str) -> ast.FunctionDef:
    tree = ast.parse(f"def {line.strip()}: ...")
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef)
    return function


def _parameters(function: ast.FunctionDef) -> list[tuple[str, str, str | None, str]]:
    """(name, kind, annotation, default) of a documented signature, in order."""
    arguments = function.args
    positional = [*arguments.posonlyargs, *arguments.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(arguments.defaults)) + list(arguments.defaults)
    found = []
    for argument, default in zip(positional, defaults, strict=True):
        kind = "POSITIONAL_ONLY" if argument in arguments.posonlyargs else "POSITIONAL_OR_KEYWORD"
        found.append((argument.arg, kind, argument.annotation, default))
    if arguments.vararg:
        found.append((arguments.vararg.arg, "VAR_POSITIONAL", arguments.vararg.annotation, None))
    for argument, default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
        found.append((argument.arg, "KEYWORD_ONLY", argument.annotation, default))
    if arguments.kwarg:
        found.append((arguments.kwarg.arg, "VAR_KEYWORD", arguments.kwarg.annotation, None))
    return [(name, kind, ast.unparse(annotation) if annotation else None,
             "" if default is None else ast.unparse(default)) for name, kind, annotation, default in found]


def _names(annotation: str) -> set[str]:
    """The type names an annotation mentions (``pydantic.BaseModel`` as ``BaseModel``), ``Any`` aside."""
    return {name.rsplit(".", 1)[-1] for name in NAME.findall(annotation)} - {"Any"}


def _drift(documented: ast.FunctionDef, actual: inspect.Signature) -> list[str]:
    """How the page's signature differs from the code's: names, kinds, order, defaults, types."""
    shown = _parameters(documented)
    real = [p for p in actual.parameters.values() if p.name != "self"]
    problems = []
    if [(n, k) for n, k, _a, _d in shown] != [(p.name, p.kind.name) for p in real]:
        problems.append(f"parameters {[(n, k) for n, k, _a, _d in shown]} on the page, "
                        f"{[(p.name, p.kind.name) for p in real]} in the code")
        return problems
    for (name, _kind, annotation, default), parameter in zip(shown, real, strict=True):
        expected = "" if parameter.default is inspect.Parameter.empty else repr(parameter.default)
        if default != expected:
            problems.append(f"{name}: default {default or 'none'} on the page, {expected or 'none'} in the code")
        code_type = str(parameter.annotation).strip("'\"")
        if parameter.annotation is not inspect.Parameter.empty and not _names(code_type) <= _names(annotation or ""):
            problems.append(f"{name}: the page's type {annotation!r} does not say {code_type!r}")
    code_return = str(actual.return_annotation).strip("'\"")
    shown_return = ast.unparse(documented.returns) if documented.returns else ""
    if shown_return != code_return:
        problems.append(f"returns {shown_return or 'nothing'} on the page, {code_return} in the code")
    return problems


@pytest.mark.parametrize("hook", sorted(_hook_names()))
def test_each_hooks_signature_on_the_page_is_the_specs(hook: str) -> None:
    """The hook's line: the parameter pluggy passes by name, its type (the callback's class) and the return."""
    hook_line, register_line = _signature_lines(hook)
    spec = inspect.signature(getattr(hookspecs, hook))
    documented = _documented(hook_line)
    assert documented.name == hook
    problems = _drift(documented, spec)
    callbacks = _registration_callbacks()
    if hook in callbacks:
        [(_name, _kind, annotation, _default)] = _parameters(documented)
        if annotation != callbacks[hook].__name__:
            problems.append(f"the host passes a {callbacks[hook].__name__}, the page says {annotation}")
        assert register_line, f"docs/hooks.md shows no register(...) signature for {hook}"
    assert not problems, f"docs/hooks.md, {hook}: " + "; ".join(problems)


@pytest.mark.parametrize("hook", sorted(_registration_callbacks()))
def test_each_register_signature_on_the_page_is_the_callbacks(hook: str) -> None:
    """``register(...)`` as the page shows it against the callback the host passes (plugins/registry.py)."""
    _hook_line, register_line = _signature_lines(hook)
    assert register_line, f"docs/hooks.md shows no register(...) signature for {hook}"
    problems = _drift(_documented(register_line), inspect.signature(_registration_callbacks()[hook].__call__))
    assert not problems, f"docs/hooks.md, register of {hook}: " + "; ".join(problems)


def _register_calls(hook: str) -> list[tuple[str, ast.Call]]:
    """Every ``register(...)`` call shown for ``hook``: in its spec's docstring, its section's prose, and
    inside ``def <hook>`` of every example on the page (an example may implement several hooks)."""
    shown: list[tuple[str, str]] = [(f"plugins/hookspecs.py {hook}", inspect.getdoc(getattr(hookspecs, hook)) or "")]
    shown.append((f"docs/hooks.md '## {hook}'", FENCE.sub("", _section(_read(DOCS / "hooks.md"), hook))))
    calls = []
    for where, text in shown:
        for code in INLINE_CODE.findall(text):
            try:
                node = ast.parse(code.strip("`"), mode="eval").body
            except SyntaxError:
                continue
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "register":
                calls.append((f"{where}: {code}", node))
    for index, example in enumerate(_hook_examples()):
        for function in ast.walk(ast.parse(example)):
            if isinstance(function, ast.FunctionDef) and function.name == hook:
                calls += [(f"docs/hooks.md example {index + 1}: {ast.unparse(node)}", node)
                          for node in ast.walk(function) if isinstance(node, ast.Call)
                          and isinstance(node.func, ast.Name) and node.func.id == "register"]
    return calls


@pytest.mark.parametrize("hook", sorted(_registration_callbacks()))
def test_every_register_call_the_docs_show_fits_the_callback(hook: str) -> None:
    """Positional and keyword arguments of each call shown bind to the callback's real signature."""
    signature = inspect.signature(_registration_callbacks()[hook].__call__)
    calls = _register_calls(hook)
    assert calls, f"neither docs/hooks.md nor the spec of {hook} shows a register(...) call"
    misfits = []
    for where, call in calls:
        positional = [object()] * len(call.args)
        keywords = {keyword.arg: object() for keyword in call.keywords if keyword.arg}
        try:
            signature.bind(object(), *positional, **keywords)  # object() stands for self
        except TypeError as exc:
            misfits.append(f"{where} ({exc})")
    assert not misfits, f"register(...) calls that {_registration_callbacks()[hook].__name__} refuses: {misfits}"


def _in_words(hook: str) -> str:
    """``superapp_register_event_subscribers`` as the docs say it: ``event subscribers``."""
    return hook.removeprefix("superapp_register_").replace("_", " ")


def test_hooks_table_lists_every_hook_in_the_order_the_host_calls_them() -> None:
    table = re.findall(r"^\| \[`(superapp_\w+)`\]\(#\1\) \|", _read(DOCS / "hooks.md"), re.M)
    expected = ["superapp_manifest", *_registration_callbacks()]
    assert table == expected, f"docs/hooks.md's table lists {table}; the host calls {expected}"


@pytest.mark.parametrize("document", ["hooks.md", "architecture.md"])
def test_the_registration_order_the_docs_give_is_the_hosts(document: str) -> None:
    text = re.sub(r"\s+", " ", _read(DOCS / document))
    expected = ", ".join(_in_words(hook) for hook in _registration_callbacks())
    assert expected in text, f"docs/{document} should give the registration order as '{expected}'"


@pytest.mark.parametrize("hook", sorted(_registration_callbacks()))
def test_each_hooks_when_names_the_hook_called_just_before(hook: str) -> None:
    """A hook inserted in the order shows up in its neighbour's '**When:**' line, not only in the code."""
    order = list(_registration_callbacks())
    when = re.search(r"^\*\*When:\*\* (.*?)(?:\n\n|\Z)", _section(_read(DOCS / "hooks.md"), hook), re.M | re.S)
    assert when, f"docs/hooks.md: the '## {hook}' section has no '**When:**' line"
    sentence = re.sub(r"\s+", " ", when.group(1))
    position = order.index(hook)
    expected = "first of the registration hooks" if position == 0 else f"after {_in_words(order[position - 1])}"
    assert expected in sentence.replace("after the ", "after "), (
        f"docs/hooks.md, {hook}: '**When:** {sentence}' should say '{expected}'")


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
