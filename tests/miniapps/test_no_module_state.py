"""No mini-app keeps mutable state at module level: state lives on the host, per app (``host.cache(...)``,
``host.state(id)``), so two apps in one process (as the tests create) never share it.

The scan reads every module of ``miniapps/`` (AST, no import) and refuses:

- a module-level name bound to a stateful object: a cache, lock, weak or default dict, deque, queue,
  counter, namespace (whatever its name), or an instance of a mini-app's own class that is not frozen;
- a lower-case module-level name bound to a dict, list or set (literal, comprehension or call);
- any module-level name that a function mutates (``NAME[k] = v``, ``del NAME[k]``, ``NAME.append(...)``,
  ``NAME.update(...)``, ... also through ``module.NAME``) or rebinds (``global NAME``).

UPPER_CASE dicts, lists and sets that nothing mutates are constants and pass, and so do Prometheus
metrics (``prometheus_client``'s Counter, Gauge, ...): ``/metrics`` is per process by design, as the
host's own counters are.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

MINIAPPS = Path(__file__).resolve().parents[2] / "miniapps"

MUTATORS = frozenset({"append", "extend", "insert", "add", "update", "setdefault", "pop", "popitem", "clear",
                      "remove", "discard", "appendleft", "extendleft", "sort", "reverse", "__setitem__",
                      "__delitem__", "intersection_update", "difference_update", "symmetric_difference_update"})
# Constructors of objects that exist to hold changing state, by their last dotted name.
STATEFUL = frozenset({"TTLCache", "LRUCache", "LFUCache", "TLRUCache", "FIFOCache", "RRCache", "WeakKeyDictionary",
                      "WeakValueDictionary", "WeakSet", "defaultdict", "OrderedDict", "deque", "Counter", "ChainMap",
                      "Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore", "Event", "local", "Queue",
                      "SimpleQueue", "LifoQueue", "PriorityQueue", "SimpleNamespace", "lru_cache", "cache",
                      "bytearray"})
CONTAINERS = frozenset({"dict", "list", "set"})


@dataclass(frozen=True)
class Finding:
    """One piece of module-level state: where, which name, and why it counts."""

    where: str
    name: str
    why: str

    def __str__(self) -> str:
        return f"{self.where}: {self.name} ({self.why})"


def _called(node: ast.expr) -> str:
    """The last dotted name of what ``node`` calls (``weakref.WeakKeyDictionary()`` -> ``WeakKeyDictionary``)."""
    func = node.func if isinstance(node, ast.Call) else node
    while isinstance(func, ast.Call):
        func = func.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _frozen(cls: ast.ClassDef) -> bool:
    """A class whose instances cannot change: a frozen dataclass, a NamedTuple or an Enum."""
    for decorator in cls.decorator_list:
        if isinstance(decorator, ast.Call) and any(k.arg == "frozen" and isinstance(k.value, ast.Constant)
                                                   and k.value.value is True for k in decorator.keywords):
            return True
    return any(_called(base) in ("NamedTuple", "Enum", "StrEnum", "IntEnum") for base in cls.bases)


def _module_bindings(tree: ast.Module) -> list[tuple[str, ast.expr, int]]:
    """(name, value, line) of each module-level assignment, including those in top-level if/try blocks."""
    found: list[tuple[str, ast.expr, int]] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found.append((target.id, node.value, node.lineno))
            elif isinstance(node, ast.AnnAssign) and node.value is not None and isinstance(node.target, ast.Name):
                found.append((node.target.id, node.value, node.lineno))
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
    visit(tree.body)
    return found


def _local_names(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names a function binds itself (arguments and assignments): a mutation of those is not module state."""
    args = function.args
    names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    names |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    for node in ast.walk(function):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def _mutated(node: ast.AST) -> str | None:
    """The name (``NAME`` or ``module.NAME``'s ``NAME``) that ``node`` mutates in place, if it does."""

    def root(expr: ast.expr) -> str | None:
        if isinstance(expr, ast.Name):
            return expr.id
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
            return expr.attr  # module.NAME
        return None

    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
        return root(node.func.value)
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store | ast.Del):
        return root(node.value)
    if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name | ast.Attribute):
        return root(node.target) if isinstance(node.target, ast.Attribute) else None
    return None


def scan(sources: dict[str, str]) -> list[Finding]:
    """The module-level state in ``sources`` (module path -> text)."""
    trees = {where: ast.parse(text) for where, text in sources.items()}
    classes = {node.name: node for tree in trees.values() for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    module_names: dict[str, set[str]] = {where: {n for n, _, _ in _module_bindings(tree)} for where, tree in trees.items()}
    every_module_name = set().union(*module_names.values()) if module_names else set()
    findings: list[Finding] = []
    for where, tree in trees.items():
        metrics = {alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom)
                   and node.module == "prometheus_client" for alias in node.names}
        for name, value, line in _module_bindings(tree):
            constant = name.isupper() or name.strip("_").isupper()
            called = _called(value) if isinstance(value, ast.Call) else ""
            if called in metrics and isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
                continue  # a process-wide metric, exported on /metrics
            if called in STATEFUL:
                findings.append(Finding(f"{where}:{line}", name, f"a {called} holds changing state"))
            elif called in classes and not _frozen(classes[called]):
                findings.append(Finding(f"{where}:{line}", name, f"an instance of the mutable class {called}"))
            elif not constant and (isinstance(value, ast.Dict | ast.List | ast.Set | ast.DictComp | ast.ListComp
                                             | ast.SetComp) or called in CONTAINERS):
                findings.append(Finding(f"{where}:{line}", name, "a module-level container"))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            local = _local_names(function)
            for node in ast.walk(function):
                if isinstance(node, ast.Global):
                    for name in node.names:
                        findings.append(Finding(f"{where}:{node.lineno}", name, f"rebound by {function.name}"))
                    continue
                name = _mutated(node)
                if name is None:
                    continue
                direct = isinstance(getattr(node, "func", None), ast.Attribute) and isinstance(
                    node.func.value, ast.Name) or isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
                if direct and name in module_names[where] and name not in local:
                    findings.append(Finding(f"{where}:{node.lineno}", name, f"mutated by {function.name}"))
                elif not direct and name in every_module_name and name.isupper():
                    findings.append(Finding(f"{where}:{node.lineno}", name, f"mutated through a module by {function.name}"))
    return findings


def test_no_miniapp_keeps_mutable_state_at_module_level() -> None:
    sources = {str(path.relative_to(MINIAPPS.parent)): path.read_text(encoding="utf-8")
               for path in sorted(MINIAPPS.rglob("*.py"))}
    assert len(sources) > 50  # the scan read the mini-apps, not an empty folder
    findings = scan(sources)
    assert not findings, "module-level state in mini-apps (keep it on the host: host.cache(...), host.state(id)):\n" + \
        "\n".join(map(str, findings))


def test_the_scan_finds_each_kind_of_module_state_and_passes_constants() -> None:
    state = {
        "a.py": "import weakref\nfrom cachetools import TTLCache\n"
                "_answers = {}\n"                            # lower-case container
                "COUNTS = TTLCache(maxsize=8, ttl=1)\n"       # a cache, even in capitals
                "_per_engine = weakref.WeakKeyDictionary()\n"
                "SEEN = set()\n"                             # a capital name, but mutated below
                "def remember(key):\n    SEEN.add(key)\n"
                "TOTAL = 0\n"
                "def count():\n    global TOTAL\n    TOTAL += 1\n",
        "b.py": "class Layers:\n    def forget(self): ...\n"
                "LAYERS = Layers()\n"                       # an instance of a mutable class
                "import a\n"
                "def poke():\n    a.NAMES['x'] = 1\n",      # a constant of another module, mutated
        "c.py": "NAMES = {'vi': 'Huế'}\n",
        "e.py": "from collections import Counter\nTALLY = Counter()\n",  # a tally, not a metric
    }
    found = {(f.name, f.why.split()[0]) for f in scan(state)}
    assert {name for name, _ in found} == {"_answers", "COUNTS", "_per_engine", "SEEN", "TOTAL", "LAYERS", "NAMES",
                                          "TALLY"}

    constants = {
        "d.py": "import logging\nfrom dataclasses import dataclass\nfrom fastapi import APIRouter\n"
                "log = logging.getLogger(__name__)\napi = APIRouter()\n"
                "LEVELS = {1: 'warning', 2: 'critical'}\nWORDS = frozenset({'a'})\n"
                "@dataclass(frozen=True)\nclass Measure:\n    name: str\n"
                "WATER = Measure('water')\n"
                "def read(levels):\n    levels = dict(LEVELS)\n    levels['x'] = 1\n    return levels\n",
        "f.py": "from prometheus_client import Counter\nSENT = Counter('sent', 'Messages sent', ['outcome'])\n",
    }
    assert scan(constants) == []
