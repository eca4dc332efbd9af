"""The one error type of the SDK: raise ``DomainError`` and the host answers with RFC 9457 problem+json."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


class DomainError(Exception):
    """Raise to answer with a problem+json document; ``field`` names the input at fault.

    The host's one handler (``core.errors.install_problem_handlers``) turns it into
    ``{"type", "title", "status", "detail", "instance", "field", ...extra}``; pages catch it and
    render their own localized page.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        type: str = "about:blank",
        field: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.type = type
        self.field = field
        self.headers = headers
        self.extra = extra
