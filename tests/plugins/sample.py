"""Fake mini-apps for contract tests, built as plain classes (pluggy accepts any namespace)."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import APIRouter

from plugins import hookimpl
from plugins.manager import Candidate

GOOD_MANIFEST: dict[str, Any] = {
    "id": "sample",
    "name": {"vi": "Mẫu", "en": "Sample"},
    "description": {"vi": "Một tiện ích mẫu.", "en": "A sample mini-app."},
    "icon": "star",
    "version": "1.0.0",
    "min_host_version": "1.0.0",
    "audiences": ["resident"],
    "public": True,
    "developer": {"name": "Tests"},
}


def manifest(**changes: Any) -> dict[str, Any]:
    """A valid manifest with ``changes`` applied (``None`` deletes a key)."""
    data = copy.deepcopy(GOOD_MANIFEST)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def plugin(mid: str = "sample", *, manifest_data: dict[str, Any] | None = None, **hooks: Any) -> type:
    """A plugin class whose manifest is ``manifest_data`` (id set to ``mid``) plus extra hooks."""
    data = manifest_data if manifest_data is not None else manifest(id=mid)

    namespace: dict[str, Any] = {"superapp_manifest": staticmethod(hookimpl(lambda: data))}
    for name, func in hooks.items():
        namespace[name] = staticmethod(hookimpl(func) if name.startswith("superapp_") else func)
    return type(f"Plugin_{mid}", (), namespace)


def candidate(mid: str = "sample", source: str = "tests", **kwargs: Any) -> Candidate:
    """A discovery candidate that loads ``plugin(mid, **kwargs)``."""
    obj = plugin(mid, **kwargs)
    return Candidate(mid, source, lambda: obj)


def routes_hook(*paths: str, pages: bool = False) -> Any:
    """A superapp_register_routes implementation serving GET ``paths``."""

    def register_routes(register: Any) -> None:
        router = APIRouter()
        for path in paths:
            router.add_api_route(path, lambda: {"ok": True}, methods=["GET"], name=path.strip("/") or "root")
        register(**({"pages": router} if pages else {"api": router}))

    return register_routes
