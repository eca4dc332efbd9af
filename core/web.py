"""Server-rendered pages: one Jinja2 environment where each mini-app's templates live under its id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader, PrefixLoader
from starlette.responses import HTMLResponse

from core.i18n import negotiate
from core.security import csp_nonce
from plugins.manifest import LocalizedText
from plugins.registry import MiniApp

CORE_TEMPLATES = Path(__file__).parent / "templates"


def build_templates(miniapps: list[MiniApp]) -> Jinja2Templates:
    """Core templates by their own names, mini-app templates as ``<id>/<name>``."""
    per_miniapp = {
        m.id: ChoiceLoader([FileSystemLoader(d) for d in m.templates_dirs]) for m in miniapps if m.templates_dirs
    }
    loader = ChoiceLoader([FileSystemLoader(CORE_TEMPLATES), PrefixLoader(per_miniapp, delimiter="/")])
    templates = Jinja2Templates(directory=str(CORE_TEMPLATES))
    templates.env.loader = loader
    templates.env.filters["t"] = _translate
    # ``<style nonce="{{ csp_nonce(request) }}">``: the only inline code the pages' CSP lets through.
    templates.env.globals["csp_nonce"] = csp_nonce
    return templates


def _translate(value: LocalizedText | dict[str, str] | str, locale: str) -> str:
    """``{{ text | t(locale) }}``: the text in the page's language."""
    if isinstance(value, LocalizedText):
        return value.get(locale)
    if isinstance(value, dict):
        return value.get(locale) or value.get("vi") or ""
    return value


def page_locale(request: Request) -> str:
    """The language of this page: ``?lang=``, then the caller's setting and ``Accept-Language``."""
    explicit = request.query_params.get("lang")
    principal = request.scope.get("superapp.principal")
    return negotiate(
        user_locale=explicit if explicit in ("vi", "en") else getattr(principal, "locale", None),
        accept_language=request.headers.get("accept-language"),
        default=request.app.state.settings.locale,
    )


def render_page(request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200) -> HTMLResponse:
    """Render a page template with ``locale``, ``principal`` and the host's shell variables set."""
    locale = page_locale(request)
    base = {
        "locale": locale,
        "principal": request.scope.get("superapp.principal"),
        "host_name": {"vi": "Huế-S", "en": "Hue-S"}[locale],
    }
    base.update(context or {})
    response = request.app.state.templates.TemplateResponse(request, name, base, status_code=status_code)
    response.headers["Content-Language"] = locale
    return response
