"""Server-rendered pages: one Jinja2 environment where each mini-app's templates live under its id."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader, PrefixLoader
from starlette.responses import HTMLResponse, Response

from core.banner import banner_for
from core.i18n import negotiate
from core.security import csp_nonce
from core.worktime import HUE_TIME
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
    templates.env.filters["hue_time"] = hue_time
    # ``<style nonce="{{ csp_nonce(request) }}">``: the only inline code the pages' CSP lets through.
    templates.env.globals["csp_nonce"] = csp_nonce
    return templates


def hue_time(value: datetime | None) -> str:
    """``{{ moment | hue_time }}``: a stored UTC moment as Hue reads a clock, ``dd/mm/yyyy HH:MM``."""
    if value is None:
        return ""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(HUE_TIME).strftime("%d/%m/%Y %H:%M")


def _translate(value: LocalizedText | dict[str, str] | str, locale: str) -> str:
    """``{{ text | t(locale) }}``: the text in the page's language."""
    if isinstance(value, LocalizedText):
        return value.get(locale)
    if isinstance(value, dict):
        return value.get(locale) or value.get("vi") or ""
    return value


LANG_COOKIE = "superapp_lang"


def page_locale(request: Request) -> str:
    """The language of this page: ``?lang=``, then the browser's last choice (cookie), then the caller's
    setting and ``Accept-Language``."""
    explicit = request.query_params.get("lang")
    if explicit not in ("vi", "en"):
        explicit = request.cookies.get(LANG_COOKIE)
    principal = request.scope.get("superapp.principal")
    return negotiate(
        user_locale=explicit if explicit in ("vi", "en") else getattr(principal, "locale", None),
        accept_language=request.headers.get("accept-language"),
        default=request.app.state.settings.locale,
    )


def remember_locale(request: Request, response: Response, locale: str) -> None:
    """Keep ``locale`` for this browser (a year), so links and redirects without ``?lang=`` keep it."""
    if locale in ("vi", "en") and request.cookies.get(LANG_COOKIE) != locale:
        response.set_cookie(LANG_COOKIE, locale, max_age=365 * 24 * 3600, samesite="lax", path="/",
                            secure=request.app.state.settings.env == "production")


def with_lang(request: Request, locale: str) -> str:
    """This page's own address (path and every query parameter kept) in ``locale``: the language toggle."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"] + [("lang", locale)]
    return f"{request.url.path}?{urlencode(query)}"


def render_page(request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200) -> HTMLResponse:
    """Render a page template with ``locale``, ``principal`` and the host's shell variables set."""
    locale = page_locale(request)
    base = {
        "locale": locale,
        "principal": request.scope.get("superapp.principal"),
        "host_name": {"vi": "Huế-S", "en": "Hue-S"}[locale],
        "lang_links": {code: with_lang(request, code) for code in ("vi", "en")},
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        "warnings_banner": banner_for(request, locale),
    }
    base.update(context or {})
    response = request.app.state.templates.TemplateResponse(request, name, base, status_code=status_code)
    response.headers["Content-Language"] = locale
    if request.query_params.get("lang") == locale:
        remember_locale(request, response, locale)
    return response
