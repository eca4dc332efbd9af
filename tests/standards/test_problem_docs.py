"""RFC 9457 in the OpenAPI: a shared Problem schema with the field extension, every operation's problem details
documented (500 everywhere, 401/403 when authenticated, 404 on id paths, 413/422 for bodies and parameters,
400 for SensorThings query options), Open311's own
error format documented instead, every problem type URI the code sends resolving to a page describing it."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from core.problems import PROBLEM_TYPES

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = "application/problem+json"


def _operations(spec: dict) -> list[tuple[str, str, dict]]:
    return [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()
            if method in ("get", "post", "put", "patch", "delete")]


def test_every_operation_documents_its_problem_details(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    problem = spec["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "instance", "field"} <= set(problem["properties"])
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # nothing sends FastAPI's own shape
    operations = _operations(spec)
    assert len(operations) > 100
    for path, method, op in operations:
        responses = op["responses"]
        problems = {code for code, answer in responses.items() if PROBLEM in answer.get("content", {})}
        label = f"{method.upper()} {path}"
        if path.startswith("/open311/"):  # the standard's own errors, not problem details
            for code in ("400", "403", "404"):
                assert "application/json; charset=utf-8" in responses[code]["content"], label
            assert problems <= {"413"}, label
            continue
        for code in problems:
            assert responses[code]["content"][PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
        assert "500" in problems, label  # any operation can fail unforeseen, answered by core.errors
        if "/floodmap/v1.1" in path and method == "get" and path.rsplit("/", 1)[-1] != "v1.1":
            assert "400" in problems, label  # a refused query option ($top, $filter, $expand, ...)
        if "{" in path:
            assert "404" in problems, label
        if method in ("post", "put", "patch"):
            assert {"413", "422"} <= problems, label
        if op.get("parameters"):
            assert "422" in problems, label
    authenticated = spec["paths"]["/api/me"]["get"]["responses"]
    assert {"401", "403"} <= set(authenticated)


def test_every_content_type_is_documented(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    documented = {kind for _p, _m, op in _operations(spec) for answer in op["responses"].values()
                  for kind in answer.get("content", {})}
    for kind in ("text/csv; charset=utf-8", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                 "application/geo+json", "application/cap+xml", "application/atom+xml", "text/xml; charset=utf-8",
                 PROBLEM):
        assert kind in documented, kind


def test_every_problem_type_the_code_sends_has_a_page(api: TestClient) -> None:
    sent = set()
    for source in [*ROOT.glob("core/**/*.py"), *ROOT.glob("miniapps/**/*.py"), *ROOT.glob("push/**/*.py"),
                   *ROOT.glob("plugins/**/*.py")]:
        sent |= set(re.findall(r'type=f?"/problems/([a-z-]+)"', source.read_text(encoding="utf-8")))
    assert {"validation", "not-found", "forbidden"} <= sent
    assert sent <= set(PROBLEM_TYPES), sent - set(PROBLEM_TYPES)
    for name in sent:
        page = api.get(f"/problems/{name}")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), name
        assert f"/problems/{name}" in page.text and PROBLEM_TYPES[name].title in page.text
    index = api.get("/problems")
    assert all(f'href="/problems/{name}"' in index.text for name in PROBLEM_TYPES)
    missing = api.get("/problems/no-such-type", headers={"Accept": "application/json"})
    assert missing.status_code == 404 and missing.json()["field"] == "path.name"


def test_a_sent_problem_names_a_type_that_resolves(api: TestClient) -> None:
    refused = api.get("/api/me", headers={"Authorization": "Bearer not-a-token"})
    assert refused.status_code == 401 and refused.headers["content-type"] == PROBLEM
    kind = refused.json()["type"]
    assert kind.startswith("/problems/") and api.get(kind).status_code == 200
