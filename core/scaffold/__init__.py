"""``superapp new-miniapp NAME``: a pip-installable mini-app package with the standard layout.

The files live under ``files/`` with ``.tmpl`` suffixes (so they are never imported or collected as
part of the host); ``__id__`` and ``__package__`` in paths and ``$id``, ``$Id``, ``$package``,
``$dist``, ``$title``, ``$host_version`` in contents are filled in.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from core.app import RESERVED_IDS
from plugins.hookspecs import CONTRACT_VERSION

FILES = Path(__file__).parent / "files"
NAME = re.compile(r"^[a-z][a-z0-9_]{1,29}$")


class ScaffoldError(ValueError):
    """The name or the target folder cannot be used."""


def create_miniapp(name: str, directory: Path) -> Path:
    """Write the package for mini-app ``name`` into ``directory/superapp-<name>`` and return that folder."""
    if not NAME.match(name):
        raise ScaffoldError(f"NAME {name!r} must be 2-30 lower-case letters, digits or '_', starting with a letter "
                            "(it becomes the mini-app id, its URL segment and its table prefix)")
    if name in RESERVED_IDS:
        raise ScaffoldError(f"NAME {name!r} is reserved by the host; choose another")
    dist = f"superapp-{name.replace('_', '-')}"
    target = directory / dist
    if target.exists():
        raise ScaffoldError(f"{target} already exists; choose another NAME or folder")
    values = {
        "id": name, "Id": "".join(part.capitalize() for part in name.split("_")), "package": f"superapp_{name}",
        "dist": dist, "title": name.replace("_", " ").title(), "host_version": CONTRACT_VERSION,
    }
    for source in sorted(FILES.rglob("*.tmpl")):
        relative = str(source.relative_to(FILES)).removesuffix(".tmpl")
        relative = relative.replace("__package__", values["package"]).replace("__id__", name)
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(Template(source.read_text(encoding="utf-8")).substitute(values), encoding="utf-8")
    return target
