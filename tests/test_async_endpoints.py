"""No ``async def`` endpoint makes a blocking database call on the event loop (a test over the code).

An ``async def`` route runs on the event loop: one blocking query there stalls every request of the
worker. Such a route must hand its database work to the thread pool (``run_in_threadpool``, a nested
``def``), or be a plain ``def``, which FastAPI runs in the thread pool itself.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "push", "plugins", "miniapps", "tests/thirdparty/superapp_festival/src")
ROUTE_DECORATORS = {"get", "post", "put", "patch", "delete", "head", "options", "api_route"}
SESSION_METHODS = {"exec", "execute", "commit", "flush", "scalar", "scalars", "refresh", "rollback", "merge",
                   "query", "get", "add", "delete"}
SESSION_NAMES = {"db", "session"}


def _endpoints(tree: ast.AST) -> Iterator[ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(target, ast.Attribute) and target.attr in ROUTE_DECORATORS:
                    yield node
                    break


def _on_the_loop(function: ast.AsyncFunctionDef) -> Iterator[ast.AST]:
    """The nodes of the body that run on the event loop: nested functions and lambdas run elsewhere."""
    stack: list[ast.AST] = list(function.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def blocking_calls(source: str) -> list[tuple[str, int, str]]:
    """(endpoint, line, what) for each blocking database use in an async endpoint of ``source``."""
    found = []
    for endpoint in _endpoints(ast.parse(source)):
        for argument in endpoint.args.args + endpoint.args.kwonlyargs:
            annotation = ast.unparse(argument.annotation) if argument.annotation else ""
            if "SessionDep" in annotation or annotation == "Session":
                found.append((endpoint.name, endpoint.lineno, f"takes a database session ({argument.arg})"))
        for node in _on_the_loop(endpoint):
            if not isinstance(node, ast.Call):
                continue
            call = node.func
            if isinstance(call, ast.Name) and call.id == "Session":
                found.append((endpoint.name, node.lineno, "opens a Session"))
            elif isinstance(call, ast.Attribute) and isinstance(call.value, ast.Name):
                if call.value.id in SESSION_NAMES and call.attr in SESSION_METHODS:
                    found.append((endpoint.name, node.lineno, f"{call.value.id}.{call.attr}()"))
                elif call.value.id == "host" and call.attr in ("session", "transaction"):
                    found.append((endpoint.name, node.lineno, f"host.{call.attr}()"))
    return found


def test_no_async_endpoint_blocks_the_event_loop_on_the_database() -> None:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found += [f"{path.relative_to(ROOT)}:{line} {name}: {what}"
                      for name, line, what in blocking_calls(path.read_text(encoding="utf-8"))]
    assert found == [], "async endpoints with blocking database calls (make them def, or use run_in_threadpool):\n" \
        + "\n".join(found)


def test_the_check_finds_a_blocking_call_and_spares_the_thread_pool() -> None:
    source = '''
@router.post("/a")
async def blocking(request: Request) -> None:
    with Session(engine) as db:
        db.commit()

@router.post("/b")
async def handed_off(request: Request) -> None:
    def work() -> None:
        with Session(engine) as db:
            db.commit()
    await run_in_threadpool(work)

@router.get("/c")
async def with_a_session(db: SessionDep) -> None:
    return None
'''
    assert sorted((name, what) for name, _, what in blocking_calls(source)) == [
        ("blocking", "db.commit()"), ("blocking", "opens a Session"), ("with_a_session", "takes a database session (db)")]
