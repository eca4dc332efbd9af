"""Installable and offline-tolerant: the web app manifest and the service worker, both from the site's root.

``/sw.js`` is served from the root so its scope is the whole site; it keeps the shell's static assets
(``PRECACHE``) and the pages listed in ``OFFLINE_PAGES`` for use without a connection. Drafts made
offline are kept by ``core/static/pwa.js`` in the browser's IndexedDB, not by the worker.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from core import __version__
from core.web import page_locale

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).parent / "static"
# The shell's assets every page uses: cached at install, so the shell draws without a connection.
PRECACHE = ("shell.css", "resident.css", "icons.svg", "pwa.js", "icons/app.svg", "icons/app-192.png",
            "icons/app-512.png")
# Pages kept for offline use after each visit (network first): the home screen and the report form.
OFFLINE_PAGES = ("/", "/m/feedback/new")
NAMES = {"vi": ("Huế-S: Công dân số", "Huế-S"), "en": ("Hue-S: Citizen services", "Hue-S")}
DESCRIPTIONS = {"vi": "Phản ánh hiện trường, cảnh báo ngập lụt, tin tức và thông báo của thành phố Huế.",
                "en": "Field reports, flood warnings, news and notices of Hue City."}


@lru_cache(maxsize=1)
def _worker_source() -> bytes:
    """sw.js with its cache named after the host version and the precached files' contents, so a new
    release (or a changed stylesheet) replaces the old cache instead of serving it forever."""
    digest = hashlib.sha256(__version__.encode())
    for name in PRECACHE:
        path = STATIC / name
        digest.update(path.read_bytes() if path.exists() else b"")
    source = (STATIC / "sw.js").read_text(encoding="utf-8")
    source = source.replace("__CACHE__", f"hue-s-{digest.hexdigest()[:12]}")
    source = source.replace("__PRECACHE__", json.dumps([f"/static/core/{n}" for n in PRECACHE]))
    source = source.replace("__PAGES__", json.dumps(list(OFFLINE_PAGES)))
    return source.encode()


@router.get("/sw.js", name="service_worker")
def service_worker() -> Response:
    """The service worker, from the root so it controls every page; never cached by HTTP (browsers check it)."""
    return Response(_worker_source(), media_type="text/javascript",
                    headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"})


@router.get("/manifest.webmanifest", name="web_app_manifest")
def web_app_manifest(request: Request) -> Response:
    """The web app manifest in the page's language (``?lang=``): name, icons, start page, colours."""
    locale = page_locale(request)
    name, short = NAMES[locale]
    body = {
        "name": name, "short_name": short, "description": DESCRIPTIONS[locale], "lang": locale,
        "id": "/", "start_url": f"/?lang={locale}", "scope": "/", "display": "standalone",
        "background_color": "#f4f6f8", "theme_color": "#7a1f2b",
        "icons": [
            {"src": "/static/core/icons/app.svg", "sizes": "any", "type": "image/svg+xml", "purpose": "any"},
            {"src": "/static/core/icons/app-192.png", "sizes": "192x192", "type": "image/png"},
            {"src": "/static/core/icons/app-512.png", "sizes": "512x512", "type": "image/png"},
        ],
    }
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/manifest+json",
                    headers={"Cache-Control": "public, max-age=3600", "Content-Language": locale,
                             "Vary": "Accept-Language, Cookie"})
