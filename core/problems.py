"""RFC 9457 problem types: a page describing each (``/problems/{name}``), and the OpenAPI that documents them.

Every problem+json the API sends has a ``type``: ``about:blank`` (the status says it all) or one of
``/problems/...`` below, which resolve to this module's pages. ``document_problems`` adds to the generated
OpenAPI, for every operation, the problems it can send: 401/403 where a caller is authenticated, 404 on
every path with an id, 422 (and 413) where it takes parameters or a body, all as
``application/problem+json`` with one shared ``Problem`` schema. A route whose standard has its own error
format (Open311) declares it as ``openapi_errors`` on its route class, and that is documented instead.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute

from core.identity.deps import get_principal, require_user
from plugins import DomainError

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class ProblemType:
    """A problem type: its title, the statuses it comes with, what it means and what to do (en, vi)."""

    title: str
    statuses: tuple[int, ...]
    means: str
    means_vi: str


PROBLEM_TYPES: dict[str, ProblemType] = {
    "validation": ProblemType(
        "Invalid request", (400, 413, 422),
        "A parameter or the body is missing, malformed or out of range. `field` names the first offending "
        "field (`body.title`, `query.limit`, `path.id`); `errors` lists each with its message. Fix the field "
        "and send again.",
        "Tham số hoặc nội dung gửi lên thiếu, sai dạng hoặc vượt giới hạn; `field` chỉ trường sai đầu tiên."),
    "not-found": ProblemType(
        "Not found", (404,),
        "Nothing with that id exists, or nothing you may see: the two are not told apart, so ids cannot be "
        "probed.", "Không có mục với mã này, hoặc bạn không được xem nó."),
    "conflict": ProblemType(
        "Conflict", (409,),
        "The request contradicts the current state (an id already taken, a version already decided). Read "
        "the current state and decide again.", "Yêu cầu mâu thuẫn với trạng thái hiện tại."),
    "unauthorized": ProblemType(
        "Unauthorized", (401,),
        "The client's credentials are missing or wrong (a mini-app's client credentials).",
        "Thông tin xác thực của ứng dụng thiếu hoặc sai."),
    "invalid-token": ProblemType(
        "Unauthorized", (401,),
        "The access token (or the sign-in token) is missing where one is needed, expired, revoked or not "
        "ours. Refresh the session or sign in again.", "Mã truy cập hết hạn, bị thu hồi hoặc không hợp lệ."),
    "forbidden": ProblemType(
        "Forbidden", (403,),
        "You are known but may not do this here: your role lacks the permission (`permission` names it) for "
        "this unit, or the token lacks the scope.", "Bạn không có quyền làm việc này tại đơn vị này."),
    "scope-not-granted": ProblemType(
        "Forbidden", (403,),
        "The resident has not granted this mini-app the scope it asks for (`scope`, `miniapp`).",
        "Người dân chưa cấp quyền này cho ứng dụng."),
    "cross-site": ProblemType(
        "Forbidden", (403,),
        "A cookie-authenticated request that changes something came from another site (its Origin is not "
        "ours). Send it from the app's own pages, or use a bearer token.",
        "Yêu cầu thay đổi dữ liệu đến từ trang khác."),
    "rate-limited": ProblemType(
        "Too many requests", (429,),
        "Over the allowed rate; `Retry-After` says when to try again.", "Vượt giới hạn tần suất; thử lại sau."),
}
STATUS_TYPES: dict[int, list[str]] = {}
for _name, _type in PROBLEM_TYPES.items():
    for _status in _type.statuses:
        STATUS_TYPES.setdefault(_status, []).append(f"/problems/{_name}")

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details, with the `field` extension naming the offending field.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "`about:blank` or a `/problems/...` URI (a page saying what "
                 "it means)", "examples": ["/problems/validation"]},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The path the problem happened on."},
        "field": {"type": "string", "description": "The offending field: `body.<name>`, `query.<name>`, "
                  "`path.<name>`, `header.<name>` or `body`."},
        "errors": {"type": "array", "description": "Every invalid field (validation problems).",
                   "items": {"type": "object", "properties": {"field": {"type": "string"},
                                                              "message": {"type": "string"},
                                                              "type": {"type": "string"}}}},
    },
    "additionalProperties": True,
}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
DESCRIPTIONS = {400: "The form body cannot be parsed", 405: "The resource the path names does not allow this method", 429: "Over the allowed rate; Retry-After says when to try again", 401: "Credentials missing where needed, expired or revoked", 403: "Not allowed for this caller",
                404: "No such item (or not one the caller may see)", 413: "The body is too large",
                422: "A parameter or the body is invalid; `field` names it",
                500: "An unexpected error; it has been logged"}

router = APIRouter(include_in_schema=False)


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        f"<body><main>{body}</main></body></html>")


def _text(markdown_ish: str) -> str:
    # `code` spans only; everything else is escaped text
    parts = html.escape(markdown_ish).split("`")
    return "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts))


@router.get("/problems", response_class=HTMLResponse)
def problem_index() -> HTMLResponse:
    """Every problem type the API sends, each linking to its page."""
    items = "".join(f'<li><a href="/problems/{name}"><code>/problems/{name}</code></a>: {html.escape(kind.title)} '
                    f"({', '.join(map(str, kind.statuses))})</li>" for name, kind in PROBLEM_TYPES.items())
    return _page("Problem types", "<h1>Problem types</h1><p>Errors are RFC 9457 problem details "
                 "(<code>application/problem+json</code>) with <code>type</code>, <code>title</code>, "
                 "<code>status</code>, <code>detail</code>, <code>instance</code> and the <code>field</code> "
                 "extension. <code>about:blank</code> means the status says it all.</p>"
                 f"<ul>{items}</ul>")


@router.get("/problems/{name}", response_class=HTMLResponse)
def problem_page(name: str) -> HTMLResponse:
    """What one problem type means and what to do about it."""
    kind = PROBLEM_TYPES.get(name)
    if kind is None:
        raise DomainError(404, f"no problem type {name!r}; see /problems", type="/problems/not-found",
                          field="path.name")
    return _page(f"{kind.title}: /problems/{name}",
                 f"<h1><code>/problems/{html.escape(name)}</code>: {html.escape(kind.title)}</h1>"
                 f"<p>HTTP status: {', '.join(map(str, kind.statuses))}</p><p>{_text(kind.means)}</p>"
                 f'<p lang="vi">{_text(kind.means_vi)}</p><p><a href="/problems">All problem types</a></p>')


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def _problem_response(status: int) -> dict[str, Any]:
    types = STATUS_TYPES.get(status, [])
    return {"description": DESCRIPTIONS.get(status, "Problem details"),
            "content": {PROBLEM_JSON: {"schema": PROBLEM_REF,
                                       **({"example": {"type": types[0], "title": PROBLEM_TYPES[
                                           types[0].rsplit("/", 1)[1]].title, "status": status,
                                           "detail": "…"}} if types else {})}}}


def _statuses(route: Any, method: str, operation: dict[str, Any]) -> list[int]:
    statuses = []
    if any(call is get_principal or call is require_user for call in _calls(route.dependant)):
        statuses += [401, 403]
    if "{" in route.path_format:
        statuses.append(404)
    if ":path}" in route.path:  # a catch-all path cannot say which resources allow the method: 405 for the rest
        statuses.append(405)
    # A dependency may say what it answers (e.g. core.webapps.s2s's client check: 401, 403, 429)
    statuses += [status for call in _calls(route.dependant) for status in getattr(call, "openapi_statuses", ())]
    body = method in ("POST", "PUT", "PATCH")
    if body:  # the body limit (core.limits) guards every body, read how it may be
        statuses.append(413)
    if body or operation.get("requestBody") or operation.get("parameters"):  # the JSON guard reads bodies too
        statuses.append(422)
    forms = ("multipart/form-data", "application/x-www-form-urlencoded")
    if any(kind in forms for kind in operation.get("requestBody", {}).get("content", {})):
        statuses.append(400)  # Starlette answers a form it cannot parse with 400
    # A 4xx or 5xx the route declared itself (e.g. ``responses={400: {"description": ...}}``) is a problem too
    statuses += [int(code) for code, answer in operation.get("responses", {}).items()
                 if code.isdigit() and 400 <= int(code) < 600 and not _has_body(answer)]
    statuses.append(500)  # core.errors answers whatever a route did not foresee, on every operation
    return sorted(set(statuses))


def _has_body(answer: dict[str, Any]) -> bool:
    # FastAPI gives a declared status without a model an empty application/json schema: no body described
    return any(media.get("schema") not in (None, {}) for media in answer.get("content", {}).values())


def add_problem_documentation(schema: dict[str, Any], routes: list[Any]) -> None:
    """Document in ``schema`` (FastAPI's OpenAPI) the problems each operation of ``routes`` can send."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    # Routers are kept as branches: walk their routes as FastAPI's own OpenAPI does (full paths, dependencies).
    for route in routing.iter_route_contexts(routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods:
            operation = schema.get("paths", {}).get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            own_errors = getattr(route.original_route, "openapi_errors", None)
            if own_errors is not None:  # the standard's own error format, not problem details
                responses.pop("422", None)
                responses.update({str(code): answer for code, answer in own_errors.items()})
                if method in ("POST", "PUT", "PATCH"):  # the host's body limit answers before the route
                    responses["413"] = _problem_response(413)
                continue
            for status in _statuses(route, method, operation):
                documented = responses.get(str(status), {})
                documented.pop("content", None)  # FastAPI's 422 names its own HTTPValidationError body
                own = documented.get("description") if documented.get("description") != "Validation Error" else None
                # the route's own words for its refusal (FastAPI's default 422 text says nothing) win
                responses[str(status)] = {**documented, **_problem_response(status), **({"description": own} if own else {})}
    schemas = schema["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):  # no operation sends them any more
        if not _referenced(schema, f"#/components/schemas/{unused}", skip=unused):
            schemas.pop(unused, None)


def _referenced(schema: dict[str, Any], ref: str, *, skip: str) -> bool:
    def walk(node: Any) -> bool:
        if isinstance(node, dict):
            return any(v == ref if k == "$ref" else walk(v) for k, v in node.items())
        if isinstance(node, list):
            return any(walk(item) for item in node)
        return False
    others = {k: v for k, v in schema["components"]["schemas"].items() if k not in (skip, "HTTPValidationError")}
    return walk(schema.get("paths", {})) or walk(others)


def document_problems(app: FastAPI) -> None:
    """Make ``app.openapi()`` document every operation's problem details (once, then cached as FastAPI does)."""
    generate = app.openapi
    documented: list[int] = []  # the id of the schema last documented; FastAPI regenerates when routes change

    def openapi() -> dict[str, Any]:
        schema = generate()
        if not documented or documented[-1] != id(schema):
            add_problem_documentation(schema, app.routes)
            documented[:] = [id(schema)]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
