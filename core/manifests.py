"""The home screen's source: the manifests a caller may see, localized, ordered and cacheable."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Collection
from threading import Lock
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from core import __version__
from core.http import if_none_match
from core.i18n import negotiate
from core.icons import icon_url
from core.identity.deps import PrincipalDep
from core.identity.principal import Principal
from core.webapps.service import tile as webapp_tile
from plugins.hookspecs import CONTRACT_VERSION
from plugins.manifest import Audience, Placement, manifest_json_schema_text
from plugins.registry import MiniApp

PLACEMENT_ORDER = {Placement.home: 0, Placement.tab: 1, Placement.menu: 2}


def visible_miniapps(miniapps: list[MiniApp], principal: Principal) -> list[MiniApp]:
    """The mini-apps shown to ``principal``, in home-screen order.

    Before sign-in: the public resident tiles. Signed in: every mini-app whose audiences meet the
    caller's (a resident sees resident mini-apps; an official those for their role).
    """
    if not principal.is_authenticated:
        shown = [m for m in miniapps if m.manifest.public and Audience.resident in m.manifest.audiences]
    else:
        audiences = principal.audiences()
        shown = [m for m in miniapps if audiences & m.audiences()]
    return sorted(shown, key=lambda m: (PLACEMENT_ORDER[m.manifest.placement], m.manifest.order, m.id))


def manifest_view(miniapp: MiniApp, *, locale: str, granted: Collection[str] = ()) -> dict[str, Any]:
    """One manifest as the app reads it: texts in ``locale`` and each scope with whether it is granted."""
    m = miniapp.manifest
    return {
        "id": m.id,
        "name": m.name.get(locale),
        "description": m.description.get(locale),
        "icon": m.icon,
        # The picture for the icon (core/icons.py): the product's SVG, the mini-app's file, or None (text).
        "icon_url": icon_url(m.id, m.icon),
        "version": m.version,
        "min_host_version": m.min_host_version,
        "audiences": [a.value for a in m.audiences],
        "public": m.public,
        "placement": m.placement.value,
        "order": m.order,
        "entry_url": miniapp.page_prefix + m.entry_page,
        "api_base": miniapp.api_prefix,
        "scopes": [
            {"scope": s.scope.value, "reason": s.reason.get(locale), "granted": s.scope.value in granted}
            for s in m.scopes
        ],
        "notification_topics": [
            {"id": t.id, "name": t.name.get(locale), "critical": t.critical} for t in m.notification_topics
        ],
        "developer": m.developer.model_dump(exclude_none=True),
        "source": miniapp.source,
    }


class ManifestCache:
    """Rendered manifest lists keyed by what changes them, so the hot path is a dictionary look-up."""

    def __init__(self, size: int = 512) -> None:
        self._entries: OrderedDict[Any, tuple[bytes, str]] = OrderedDict()
        self._size = size
        self._lock = Lock()

    def get_or_render(self, key: Any, render: Any) -> tuple[bytes, str]:
        """The cached (body, etag) for ``key``, rendering it with ``render()`` on a miss."""
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                return hit
        body = json.dumps(render(), ensure_ascii=False, separators=(",", ":")).encode()
        entry = (body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
        with self._lock:
            self._entries[key] = entry
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return entry


router = APIRouter(tags=["mini-apps"])
MANIFEST_SCHEMA = manifest_json_schema_text().encode()


@router.get("/schemas/miniapp-manifest.json", include_in_schema=False)
async def manifest_schema() -> Response:
    """The JSON Schema of manifest.json (the same as docs/manifest.schema.json), for editors and CI validators."""
    return Response(MANIFEST_SCHEMA, media_type="application/schema+json",
                    headers={"Cache-Control": "public, max-age=3600", "Access-Control-Allow-Origin": "*"})


@router.get(
    "/api/miniapps",
    operation_id="list_miniapps",
    summary="Mini-app manifests for the caller's home screen",
    responses={200: {"content": {"application/json": {}}}, 304: {"description": "Not modified"}},
)
async def list_miniapps(request: Request, principal: PrincipalDep) -> Response:
    """The manifests the caller may see, localized, in home-screen order, with an ETag."""
    state = request.app.state
    locale = negotiate(
        user_locale=principal.locale,
        accept_language=request.headers.get("accept-language"),
        default=state.settings.locale,
    )
    granted = (
        await run_in_threadpool(state.consents.granted_by_miniapp, principal) if principal.kind == "resident" else {}
    )
    # Outside web mini-apps (core/webapps) join by audience and by the caller's rollout bucket.
    webapps = await run_in_threadpool(state.webapps.visible, principal)
    key = (locale, principal.is_authenticated, principal.audiences(), tuple(sorted((k, tuple(sorted(v))) for k, v in granted.items())),
           tuple((w.id, w.version) for w in webapps))

    def render() -> dict[str, Any]:
        shown = visible_miniapps(state.miniapps, principal)
        return {
            "locale": locale,
            "host_version": __version__,
            "contract_version": CONTRACT_VERSION,
            "miniapps": [manifest_view(m, locale=locale, granted=granted.get(m.id, ())) for m in shown]
            + [webapp_tile(w, locale=locale, granted=granted.get(w.id, set())) for w in webapps],
        }

    body, etag = state.manifest_cache.get_or_render(key, render)
    headers = {
        "ETag": etag,
        "Vary": "Accept-Language, Authorization, Cookie",
        "Cache-Control": "private, no-cache",
        "Content-Language": locale,
    }
    if if_none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
