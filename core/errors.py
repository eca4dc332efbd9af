"""RFC 9457 problem details for every error the API returns, with the offending field named."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from plugins._errors import DomainError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


# One error type for core and mini-apps alike: ``Problem`` is the SDK's ``plugins.DomainError``.
Problem = DomainError


def problem_response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    type: str = "about:blank",
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response."""
    body: dict[str, Any] = {
        "type": type,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    return ".".join(parts) if parts else "request"


# PostgreSQL's INTEGER: no row id is larger, so a bigger number names nothing.
LARGEST_ID = 2**31 - 1


def _out_of_range(request: Request) -> tuple[int, str | None]:
    """404 naming the path parameter, or 422 naming the query parameter, that holds a too-large number."""

    def too_big(value: object) -> bool:
        text = str(value).strip().lstrip("+-")
        return text.isascii() and text.isdigit() and int(text) > LARGEST_ID

    for name, value in request.path_params.items():
        if too_big(value):
            return 404, f"path.{name}"
    for name, value in request.query_params.multi_items():
        if too_big(value):
            return 422, f"query.{name}"
    return 422, None


def install_problem_handlers(app: FastAPI) -> None:
    """Answer validation errors, HTTP errors, Problems and unexpected errors with problem+json."""

    @app.exception_handler(DomainError)
    async def _problem(request: Request, exc: DomainError) -> JSONResponse:
        return problem_response(
            exc.status, exc.detail, title=exc.title, type=exc.type, instance=request.url.path,
            headers=exc.headers, field=exc.field, **exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field_path(error["loc"]), "message": error["msg"], "type": error["type"]}
            for error in exc.errors()
        ]
        first = errors[0] if errors else {"field": "request", "message": "invalid request"}
        return problem_response(
            422,
            f"{first['field']}: {first['message']}",
            title="Invalid request",
            type="/problems/validation",
            instance=request.url.path,
            field=first["field"],
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, RecursionError):
            # FastAPI parses JSON bodies itself and calls every failure "an error parsing the body".
            return problem_response(422, "the JSON body is nested too deeply to read", title="Invalid request",
                                    type="/problems/validation", instance=request.url.path, field="body")
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem_response(
            exc.status_code, detail, instance=request.url.path, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _refused_by_database(request: Request, exc: Exception) -> JSONResponse:
        # The database refuses a value the request carried: a number no row id can be (SQLite raises
        # OverflowError, PostgreSQL "integer out of range") or text with NUL in it (PostgreSQL). Every
        # route shares this, so it is answered here, naming the parameter when it is in the path or query.
        message = str(exc)
        if "NUL (0x00)" in message:
            return problem_response(422, "Text may not contain NUL (0x00) characters.", instance=request.url.path)
        if isinstance(exc, OverflowError) or "out of range" in message:
            status, field = _out_of_range(request)
            return problem_response(status, "A number in the request is out of range: nothing has that id.",
                                    field=field, instance=request.url.path)
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            500, "An unexpected error occurred; it has been logged.", instance=request.url.path
        )
