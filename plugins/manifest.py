"""The mini-app manifest: what a mini-app declares about itself, validated with precise errors."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

SLUG = r"^[a-z][a-z0-9_]{1,39}$"
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the mini-app and each bad field."""


class Audience(StrEnum):
    """Who a mini-app is for; the home screen shows a tile only to its audiences."""

    resident = "resident"
    commune_official = "commune_official"
    department_official = "department_official"
    operator = "operator"


class Scope(StrEnum):
    """Personal data or device capabilities a mini-app may ask a resident to grant."""

    location = "location"
    phone = "phone"
    camera = "camera"
    notifications = "notifications"
    profile = "profile"


class Placement(StrEnum):
    """Where the app shows the mini-app's entry."""

    home = "home"
    tab = "tab"
    menu = "menu"


NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=400)]


class LocalizedText(BaseModel):
    """A text in Vietnamese and English; both are required so neither audience sees a gap."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    vi: NonEmpty
    en: NonEmpty

    def get(self, locale: str) -> str:
        """The text in ``locale``, falling back to Vietnamese."""
        return self.en if locale == "en" else self.vi


class ScopeRequest(BaseModel):
    """A scope the mini-app asks for, with the reason shown to the resident."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    scope: Scope
    reason: LocalizedText


class NotificationTopic(BaseModel):
    """A kind of notification the mini-app sends; residents can mute it in their preferences."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: Annotated[str, StringConstraints(pattern=SLUG)]
    name: LocalizedText
    critical: bool = False


class Developer(BaseModel):
    """Who to contact about the mini-app."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: NonEmpty
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] | None = None


class Manifest(BaseModel):
    """Everything the host and the phone app need to know about a mini-app before loading it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(pattern=SLUG)] = Field(
        description="Slug, equal to the package (or entry point) name: lower case, digits, underscore."
    )
    name: LocalizedText
    description: LocalizedText
    icon: NonEmpty = Field(description="Icon name from the app's icon set, or a path under static/.")
    version: str = Field(description="The mini-app's own version, SemVer.",
                         json_schema_extra={"pattern": SEMVER.pattern})
    min_host_version: str = Field(description="Oldest host (contract) version this mini-app runs on.",
                                  json_schema_extra={"pattern": SEMVER.pattern})
    audiences: Annotated[list[Audience], Field(min_length=1)]
    public: bool = Field(
        False, description="Shown on the home screen before sign-in (resident audience only)."
    )
    entry_page: Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9_\-/.]*$")] = "/"
    placement: Placement = Placement.home
    order: Annotated[int, Field(ge=0, le=10_000)] = 100
    scopes: list[ScopeRequest] = Field(default_factory=list)
    notification_topics: list[NotificationTopic] = Field(default_factory=list)
    roots: list[Annotated[str, StringConstraints(pattern=r"^/[a-z0-9][a-z0-9_\-]*$")]] = Field(
        default_factory=list,
        description="Top-level paths served for an open standard (e.g. /open311), outside /api/miniapps/<id>.",
    )
    developer: Developer

    @field_validator("version", "min_host_version")
    @classmethod
    def _semver(cls, value: str) -> str:
        if not SEMVER.match(value):
            raise ValueError(f"{value!r} is not a SemVer version such as 1.2.0")
        return value

    @field_validator("scopes")
    @classmethod
    def _unique_scopes(cls, value: list[ScopeRequest]) -> list[ScopeRequest]:
        seen = [request.scope for request in value]
        if len(seen) != len(set(seen)):
            raise ValueError("each scope may be asked for once")
        return value

    @field_validator("notification_topics")
    @classmethod
    def _unique_topics(cls, value: list[NotificationTopic]) -> list[NotificationTopic]:
        ids = [topic.id for topic in value]
        if len(ids) != len(set(ids)):
            raise ValueError("notification topic ids must be unique")
        return value

    @field_validator("public")
    @classmethod
    def _public_is_for_residents(cls, value: bool, info: Any) -> bool:
        if "audiences" not in info.data:
            return value  # audiences failed on their own; do not add a second, derived error
        if value and Audience.resident not in info.data["audiences"]:
            raise ValueError("only a mini-app for residents can be public")
        return value


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``manifest.json``, generated from ``Manifest`` (published as docs/manifest.schema.json)."""
    schema = Manifest.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "Hue super-app mini-app manifest",
            **{k: v for k, v in schema.items() if k != "title"}}


def manifest_json_schema_text() -> str:
    """``manifest_json_schema()`` as the text of the published file (two-space indent, UTF-8, final newline)."""
    return json.dumps(manifest_json_schema(), indent=2, ensure_ascii=False) + "\n"


def semver_tuple(version: str) -> tuple[int, int, int]:
    """The (major, minor, patch) of a SemVer string, for ordering."""
    match = SEMVER.match(version)
    if not match:
        raise ValueError(f"{version!r} is not a SemVer version")
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def _strictly(data: dict[str, Any]) -> Manifest:
    """Validate as the JSON it is, without coercion: ``"order": "40"`` or ``"public": "yes"`` are refused."""
    try:
        text = json.dumps(data)
    except (TypeError, ValueError):  # built in Python with objects JSON cannot hold: validate those as given
        return Manifest.model_validate(data)
    return Manifest.model_validate_json(text, strict=True)


def validate_manifest(raw: Manifest | Mapping[str, Any], *, miniapp: str) -> Manifest:
    """Validate ``raw`` as the manifest of ``miniapp``, raising ManifestError naming every bad field."""
    if isinstance(raw, Manifest):
        manifest = raw
    elif isinstance(raw, Mapping):
        try:
            manifest = _strictly(dict(raw))
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                field = ".".join(str(part) for part in error["loc"]) or "(manifest)"
                problems.append(f"field '{field}': {error['msg']}")
            raise ManifestError(
                f"mini-app '{miniapp}': invalid manifest: " + "; ".join(problems)
            ) from None
    else:
        raise ManifestError(
            f"mini-app '{miniapp}': superapp_manifest() returned {type(raw).__name__}, "
            "expected a Manifest or a mapping"
        )
    if manifest.id != miniapp:
        raise ManifestError(
            f"mini-app '{miniapp}': field 'id': manifest id {manifest.id!r} must equal the "
            f"package or entry point name {miniapp!r}"
        )
    return manifest


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read a ``manifest.json`` (give the file, or any file beside it such as ``__file__``)."""
    path = Path(path)
    if path.name != "manifest.json":
        path = path.with_name("manifest.json")
    with path.open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data
