"""Admins read and change mini-app settings: a JSON API and a form generated from the model's schema."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from core.errors import Problem
from core.identity.authz import require_permission
from core.identity.deps import PrincipalDep
from core.identity.principal import Principal
from core.miniapp_settings.service import MiniAppSettingsStore, SettingsRejected, secret_fields
from core.web import page_locale, render_page
from plugins.registry import settings_properties

PERMISSION = "core.miniapps.configure"
router = APIRouter(tags=["mini-app settings"])
pages = APIRouter(include_in_schema=False)


def _store(request: Request, miniapp_id: str) -> MiniAppSettingsStore:
    store: MiniAppSettingsStore = request.app.state.miniapp_settings
    if miniapp_id not in store.configurable():
        raise Problem(404, f"mini-app {miniapp_id!r} has no settings", field="path.miniapp_id")
    return store


@router.get("/api/admin/miniapps/{miniapp_id}/settings", operation_id="get_miniapp_settings",
            dependencies=[require_permission(PERMISSION)])
async def get_settings(request: Request, miniapp_id: str) -> dict[str, Any]:
    """Admins: the settings schema and current values of a mini-app (secrets only as set or not)."""
    return await run_in_threadpool(_store(request, miniapp_id).describe, miniapp_id)


@router.patch("/api/admin/miniapps/{miniapp_id}/settings", operation_id="change_miniapp_settings")
async def change_settings(request: Request, miniapp_id: str, principal: Principal = require_permission(PERMISSION),
                          changes: dict[str, Any] = Body(..., examples=[{"max_events": 30, "tickets_api_key": "…"}])
                          ) -> dict[str, Any]:
    """Admins: change some settings (``null`` resets one to its default); all or nothing."""
    store = _store(request, miniapp_id)
    try:
        await run_in_threadpool(store.update, miniapp_id, changes, actor_id=principal.user_id,
                                address=request.client.host if request.client else None)
    except SettingsRejected as exc:
        first = next(iter(exc.errors))
        raise Problem(422, str(exc), field=f"body.{first}",
                      errors=[{"field": f"body.{k}", "detail": v} for k, v in exc.errors.items()]) from None
    return await run_in_threadpool(store.describe, miniapp_id)


# --- The form ------------------------------------------------------------------------------------------------


def form_fields(store: MiniAppSettingsStore, miniapp_id: str, locale: str = "en") -> list[dict[str, Any]]:
    """One entry per setting for the form: its name, label, input kind, limits and current value.

    Labels and help come in the page's language when the field gives them (``json_schema_extra``
    ``title_vi`` / ``description_vi``); otherwise its ``title`` and ``description``."""
    described = store.describe(miniapp_id)
    model = store.model_of(miniapp_id)
    secrets = secret_fields(model)
    fields = []
    for name, prop in settings_properties(model).items():
        kind = ("secret" if name in secrets else "choice" if "enum" in prop else
                {"boolean": "checkbox", "integer": "integer", "number": "number"}.get(prop.get("type"), "text"))
        fields.append({
            "name": name, "label": prop.get(f"title_{locale}") or prop.get("title", name),
            "help": prop.get(f"description_{locale}") or prop.get("description", ""), "kind": kind,
            "choices": prop.get("enum", []), "min": prop.get("minimum"), "max": prop.get("maximum"),
            "maxlength": prop.get("maxLength"),
            "value": None if kind == "secret" else described["values"].get(name),
            "is_set": described["secrets"].get(name, False),
        })
    return fields


def _gate(request: Request, principal: Principal, miniapp_id: str) -> Response | None:
    if not principal.is_authenticated:
        return RedirectResponse(f"/auth/login?next=/admin/miniapps/{miniapp_id}/settings", status_code=303)
    if not request.app.state.authorizer.allows(principal, PERMISSION):
        return render_page(request, "feed/forbidden.html", {}, status_code=403)
    _store(request, miniapp_id)
    return None


def _render(request: Request, miniapp_id: str, *, errors: dict[str, str], saved: bool = False,
            status_code: int = 200) -> HTMLResponse:
    store: MiniAppSettingsStore = request.app.state.miniapp_settings
    miniapp = next(m for m in request.app.state.miniapps if m.id == miniapp_id)
    return render_page(request, "miniapp_settings/edit.html", {
        "miniapp": miniapp, "name": miniapp.manifest.name.get(page_locale(request)),
        "fields": form_fields(store, miniapp_id, page_locale(request)), "errors": errors, "saved": saved,
    }, status_code=status_code)


@pages.get("/admin/miniapps/{miniapp_id}/settings", response_class=HTMLResponse, name="miniapp_settings_page")
def settings_page(request: Request, miniapp_id: str, principal: PrincipalDep, saved: bool = False) -> Response:
    """Admins: the settings form of one mini-app."""
    return _gate(request, principal, miniapp_id) or _render(request, miniapp_id, errors={}, saved=saved)


@pages.post("/admin/miniapps/{miniapp_id}/settings", response_class=HTMLResponse)
async def save_settings_form(request: Request, miniapp_id: str, principal: PrincipalDep) -> Response:
    """Check and save the form; back to it with a notice, or with each field's error."""
    refused = _gate(request, principal, miniapp_id)
    if refused is not None:
        return refused
    store: MiniAppSettingsStore = request.app.state.miniapp_settings
    form = await request.form()
    changes: dict[str, Any] = {}
    for field in form_fields(store, miniapp_id):
        name, raw = field["name"], str(form.get(field["name"]) or "").strip()
        if field["kind"] == "checkbox":
            changes[name] = name in form
        elif field["kind"] == "secret":
            if form.get(f"{name}__clear"):
                changes[name] = None
            elif raw:  # blank keeps the stored secret: it is never sent back to the browser
                changes[name] = raw
        else:
            changes[name] = raw  # pydantic turns "30" into 30 for integer fields and says why it cannot
    try:
        await run_in_threadpool(store.update, miniapp_id, changes, actor_id=principal.user_id,
                                address=request.client.host if request.client else None)
    except SettingsRejected as exc:
        return _render(request, miniapp_id, errors=exc.errors, status_code=422)
    return RedirectResponse(f"/admin/miniapps/{miniapp_id}/settings?saved=1&lang={page_locale(request)}",
                            status_code=303)
