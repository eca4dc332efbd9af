"""The product's SVG icon set (``core/static/icons.svg``) and how a manifest's ``icon`` becomes a picture.

A manifest's ``icon`` is a name from this set (``"report"``), a path under the mini-app's ``static/``
(``"icon.svg"``), or, as before, any short text such as an emoji, which is shown as text.
"""

from __future__ import annotations

import re

SPRITE = "/static/core/icons.svg"
# Every symbol id in core/static/icons.svg; tests check the two agree.
ICONS = frozenset({"report", "flood", "chat", "tasks", "home", "news", "search", "bell", "user", "admin",
                   "warning", "app"})
_STATIC_FILE = re.compile(r"^(static/)?[A-Za-z0-9_\-/]+\.(svg|png|webp)$")


def icon_url(miniapp_id: str, icon: str) -> str | None:
    """Where the picture of ``icon`` is served: the sprite's symbol, the mini-app's own file, or None (text)."""
    if icon in ICONS:
        return f"{SPRITE}#{icon}"
    if _STATIC_FILE.match(icon) and ".." not in icon:
        return f"/static/m/{miniapp_id}/{icon.removeprefix('static/')}"
    return None
