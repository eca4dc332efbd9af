"""RFC 9457 problem details for every error the API returns, with the offending field named."""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
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


# Paths whose clients are programs: the API, the standards' endpoints (mini-apps' manifest ``roots``, e.g.
# /open311) and the operational ones. Every other path is a page a person opened, and gets a page.
MACHINE_PREFIXES = ("/api/", "/api", "/openapi.json", "/docs", "/redoc", "/metrics", "/healthz", "/readyz",
                    "/static/", "/.well-known/", "/oauth/")

ERROR_TEXT: dict[int, tuple[dict[str, str], dict[str, str]]] = {
    400: ({"vi": "Yêu cầu không hợp lệ", "en": "Bad request"},
          {"vi": "Trang không đọc được yêu cầu này.", "en": "This request could not be read."}),
    401: ({"vi": "Cần đăng nhập", "en": "Sign-in needed"},
          {"vi": "Hãy đăng nhập để xem trang này.", "en": "Sign in to see this page."}),
    403: ({"vi": "Không có quyền", "en": "Not allowed"},
          {"vi": "Tài khoản của bạn không được xem hoặc làm việc này.",
           "en": "Your account may not see or do this."}),
    404: ({"vi": "Không tìm thấy trang", "en": "Page not found"},
          {"vi": "Trang này không có hoặc đã bị gỡ.", "en": "This page does not exist or has been removed."}),
    405: ({"vi": "Không thực hiện được", "en": "Not possible here"},
          {"vi": "Trang này không nhận cách gửi này.", "en": "This page does not accept this kind of request."}),
    409: ({"vi": "Đã có thay đổi", "en": "Changed meanwhile"},
          {"vi": "Dữ liệu vừa được thay đổi; hãy tải lại trang và thử lại.",
           "en": "The data changed meanwhile; reload the page and try again."}),
    413: ({"vi": "Tệp quá lớn", "en": "File too large"},
          {"vi": "Tệp gửi lên quá lớn.", "en": "The file sent is too large."}),
    415: ({"vi": "Loại tệp không nhận", "en": "File type not accepted"},
          {"vi": "Loại tệp này không được nhận.", "en": "This type of file is not accepted."}),
    422: ({"vi": "Thông tin chưa đúng", "en": "Something to correct"},
          {"vi": "Có thông tin chưa đúng trong yêu cầu.", "en": "Something in the request needs correcting."}),
    429: ({"vi": "Quá nhiều yêu cầu", "en": "Too many requests"},
          {"vi": "Bạn đã gửi quá nhiều yêu cầu; hãy đợi một lát rồi thử lại.",
           "en": "Too many requests; wait a moment and try again."}),
    500: ({"vi": "Có lỗi xảy ra", "en": "Something went wrong"},
          {"vi": "Đã có lỗi ngoài ý muốn; lỗi đã được ghi lại.", "en": "An unexpected error occurred; it has been logged."}),
    503: ({"vi": "Tạm thời không phục vụ được", "en": "Temporarily unavailable"},
          {"vi": "Hệ thống đang bận; hãy thử lại sau ít phút.", "en": "The service is busy; try again in a few minutes."}),
}


def wants_page(request: Request) -> bool:
    """True when a person's browser asked for a page: not the API, a standard's endpoint or an operational path."""
    path = request.url.path
    if path.startswith(MACHINE_PREFIXES):
        return False
    roots = [root for m in getattr(request.app.state, "miniapps", []) for root in getattr(m.manifest, "roots", [])]
    if any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots):
        return False
    accept = request.headers.get("accept", "")
    # A program asking a page path for JSON (fetch with Accept: application/json) keeps its problem details.
    return not ("json" in accept and "text/html" not in accept)


def error_page(request: Request, status: int, *, field: str | None = None,
               headers: dict[str, str] | None = None) -> Response | None:
    """The shell's localized error page for ``status``; None when the page itself cannot be drawn."""
    from core.web import render_page  # core.web imports this module's neighbours; imported late

    heading, message = ERROR_TEXT.get(status) or ERROR_TEXT[500 if status >= 500 else 400]
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    try:
        response = render_page(request, "shell/error.html", {
            "status": status, "heading": heading, "message": message, "field": field,
            "sign_in": f"/auth/phone?next={quote(here)}" if status == 401 else None,
        }, status_code=status)
    except Exception:  # noqa: BLE001 - the page is a courtesy; the problem+json answer still tells the truth
        log.exception("error page for %s could not be drawn", request.url.path)
        return None
    for key, value in (headers or {}).items():
        if key.lower() != "content-type":
            response.headers[key] = value
    return response


def install_problem_handlers(app: FastAPI) -> None:
    """Answer validation errors, HTTP errors, Problems and unexpected errors with problem+json on the API
    and standards' paths, and with the shell's localized error page on pages."""

    def page_or(request: Request, status: int, problem: Callable[[], Response], *, field: str | None = None,
                headers: dict[str, str] | None = None) -> Response:
        if wants_page(request):
            page = error_page(request, status, field=field, headers=headers)
            if page is not None:
                return page
        return problem()

    @app.exception_handler(DomainError)
    async def _problem(request: Request, exc: DomainError) -> Response:
        return page_or(request, exc.status, lambda: problem_response(
            exc.status, exc.detail, title=exc.title, type=exc.type, instance=request.url.path,
            headers=exc.headers, field=exc.field, **exc.extra,
        ), field=exc.field, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"field": _field_path(error["loc"]), "message": error["msg"], "type": error["type"]}
            for error in exc.errors()
        ]
        first = errors[0] if errors else {"field": "request", "message": "invalid request"}
        return page_or(request, 422, lambda: problem_response(
            422,
            f"{first['field']}: {first['message']}",
            title="Invalid request",
            type="/problems/validation",
            instance=request.url.path,
            field=first["field"],
            errors=errors,
        ), field=first["field"])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        headers = getattr(exc, "headers", None)
        return page_or(request, exc.status_code, lambda: problem_response(
            exc.status_code, detail, instance=request.url.path, headers=headers
        ), headers=headers)

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _refused_by_database(request: Request, exc: Exception) -> Response:
        # The database refuses a value the request carried: a number no row id can be (SQLite raises
        # OverflowError, PostgreSQL "integer out of range") or text with NUL in it (PostgreSQL). Every
        # route shares this, so it is answered here, naming the parameter when it is in the path or query.
        message = str(exc)
        if "NUL (0x00)" in message:
            return page_or(request, 422, lambda: problem_response(
                422, "Text may not contain NUL (0x00) characters.", instance=request.url.path))
        if isinstance(exc, OverflowError) or "out of range" in message:
            status, field = _out_of_range(request)
            return page_or(request, status, lambda: problem_response(
                status, "A number in the request is out of range: nothing has that id.", field=field,
                instance=request.url.path), field=field)
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return page_or(request, 500, lambda: problem_response(
            500, "An unexpected error occurred; it has been logged.", instance=request.url.path
        ))
