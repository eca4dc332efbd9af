"""Contract 1.1 compatibility: a mini-app that still imports host internals loads, warned once per old path.

Before contract 1.2 mini-apps imported ``core.db.SessionDep``, ``core.errors.Problem`` and the like; those
paths still work for one minor version. At load time the host reads the mini-app's own source files and
warns (``DeprecationWarning``) once per old import path, naming the SDK name that replaces it.
"""

from __future__ import annotations

import ast
import re
import threading
import warnings
from functools import lru_cache
from pathlib import Path
from types import ModuleType

HOST_PACKAGES = ("core", "push", "config")
MAX_FILES = 500  # a mini-app package, not a site-packages tree
# Old names whose SDK name differs from their own.
RENAMED = {("core.errors", "Problem"): "DomainError", ("core.identity.models", "Membership"): "MembershipRow",
           ("plugins.context", "HostContext"): "Host"}

_warned: set[tuple[str, str]] = set()
_lock = threading.Lock()


@lru_cache(maxsize=1)
def sdk_names() -> dict[tuple[str, str], str]:
    """(host module, name) -> the SDK name that replaces it, read from plugins/_sdk.py's own imports."""
    tree = ast.parse((Path(__file__).parent / "_sdk.py").read_text(encoding="utf-8"))
    names: dict[tuple[str, str], str] = dict(RENAMED)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names.setdefault((node.module, alias.name), alias.asname or alias.name)
    return names


# Files that cannot import a host package are not parsed: parsing every mini-app's source cost about a
# second per app built (tests build hundreds; the built-ins import only the SDK).
# (Any import of a host package names it as a word; a file that never does cannot import one.)
_MAY_IMPORT_HOST = re.compile(r"\b(?:" + "|".join(HOST_PACKAGES) + r")\b")


def host_imports(module: ModuleType) -> list[tuple[str, str, str]]:
    """(file, old module, name) for every import of a host package in the mini-app's own source files."""
    source = getattr(module, "__file__", None)
    if not source:
        return []
    root = Path(source).parent if Path(source).name == "__init__.py" else Path(source)
    files = sorted(root.rglob("*.py"))[:MAX_FILES] if root.is_dir() else [root]
    found: list[tuple[str, str, str]] = []
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            continue
        found.extend((path.name, old_module, name) for old_module, name in _file_imports(str(path), stat.st_mtime_ns,
                                                                                         stat.st_size))
    return found


@lru_cache(maxsize=4096)
def _file_imports(path: str, mtime_ns: int, size: int) -> tuple[tuple[str, str], ...]:
    """(old module, name) for each host import in one source file, read again only when the file changes."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ()
    if not _MAY_IMPORT_HOST.search(text):
        return ()
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return ()
    found: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] in HOST_PACKAGES:
            found.extend((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((alias.name, "") for alias in node.names if alias.name.split(".")[0] in HOST_PACKAGES)
    return tuple(found)


def warn_host_imports(miniapp_id: str, module: ModuleType) -> list[str]:
    """Warn once per old import path a mini-app uses; returns the messages of this call's warnings."""
    messages: list[str] = []
    for filename, old_module, name in host_imports(module):
        old = f"{old_module}.{name}" if name else old_module
        with _lock:
            if (miniapp_id, old) in _warned:
                continue
            _warned.add((miniapp_id, old))
        replacement = sdk_names().get((old_module, name))
        if replacement:
            message = (f"mini-app '{miniapp_id}' ({filename}) imports {old}: import plugins.{replacement} instead; "
                       "host import paths are not part of the contract and stop working in contract 2.0")
        else:
            message = (f"mini-app '{miniapp_id}' ({filename}) imports {old}, which is not part of the SDK: use the "
                       "names in plugins.__all__; host internals change without notice")
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        messages.append(message)
    return messages
