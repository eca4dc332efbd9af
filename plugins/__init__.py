"""The mini-app SDK: everything a mini-app, built-in or third-party, imports from the host.

A mini-app imports ``plugins`` (and its own package and third-party libraries), nothing of ``core``,
``push`` or ``config``; import-linter enforces it (``.importlinter``)::

    from plugins import CurrentUser, DomainError, HostDep, SessionDep, hookimpl, render_page

Stability: the names in ``__all__`` are the public API. Within one major version of
``CONTRACT_VERSION`` they keep their meaning and signatures; a name that goes away is first deprecated
for one minor version (a ``DeprecationWarning`` naming its replacement). Submodules whose names start
with an underscore (``plugins._sdk``, ``plugins._web``, ...) and the host packages behind them are
implementation and change without notice. ``plugins.testing`` (the contract kit, also a pytest plugin)
and ``plugins.fakes`` are public too. The contract modules ``plugins.hookspecs``, ``manifest``,
``registry``, ``events``, ``feed``, ``inbox``, ``search`` and ``context`` stay importable for contract 1.1 packages.

Names backed by the host (sessions, identity, units, media, feed, notifier types) load on first use,
so importing ``plugins`` while the host itself starts never imports the host.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import pluggy

from plugins._cache import Cache
from plugins._errors import DomainError
from plugins._web import HostDep, get_host, host_of
from plugins.context import Host, HostContext, HostServiceMissing
from plugins.events import DomainEvent, MiniAppsLoaded
from plugins.feed import FeedCard, FeedContext
from plugins.hookspecs import CONTRACT_VERSION, PROJECT
from plugins.inbox import InboxPrompt, PromptContext
from plugins.manifest import Audience, LocalizedText, Manifest, ManifestError, Scope, read_manifest
from plugins.registry import ContractError, MiniApp, Permission
from plugins.search import SearchQuery, SearchResult

if TYPE_CHECKING:
    from plugins._sdk import (
        CITY_ID,
        DEMO_PASSWORD,
        DEMO_PASSWORD_ENV,
        HUE_TIME,
        Authorizer,
        CurrentUser,
        FeedError,
        FeedItemPublished,
        FeedItemWithdrawn,
        FileBatch,
        LocalFallback,
        MediaStore,
        Membership,
        MembershipRow,
        NotificationSent,
        NotifierError,
        OrgUnit,
        PhotoRejected,
        Principal,
        PrincipalDep,
        ProcessedPhoto,
        Receipt,
        SessionDep,
        Severity,
        UnitKind,
        UnitsDirectory,
        User,
        UserKind,
        add_working_days,
        add_working_hours,
        all_or_nothing,
        allow_body,
        allow_uploads,
        create_official,
        encoded_answer,
        fold,
        if_none_match,
        json_nesting_exceeds,
        loads_json,
        page_locale,
        places,
        process_photo,
        public_base_url,
        render_page,
        require_permission,
        require_scope,
        slugify,
        utcnow,
    )

hookimpl = pluggy.HookimplMarker(PROJECT)

# Host-backed names, loaded from plugins._sdk on first access (PEP 562).
_HOST_BACKED = frozenset({
    "LocalFallback",
    "CITY_ID", "DEMO_PASSWORD", "DEMO_PASSWORD_ENV", "HUE_TIME", "Authorizer", "CurrentUser", "FeedError",
    "FeedItemPublished", "FeedItemWithdrawn", "FileBatch", "MediaStore", "Membership", "MembershipRow",
    "NotificationSent", "NotifierError", "OrgUnit", "PhotoRejected", "Principal", "PrincipalDep",
    "ProcessedPhoto", "Receipt", "SessionDep", "Severity", "UnitKind", "UnitsDirectory", "User", "UserKind",
    "add_working_days", "add_working_hours", "all_or_nothing", "create_official", "encoded_answer", "fold",
    "if_none_match", "page_locale",
    "places", "process_photo", "allow_body", "allow_uploads", "json_nesting_exceeds", "loads_json", "public_base_url", "render_page", "require_permission", "require_scope", "slugify", "utcnow",
})

__all__ = sorted([
    # the contract: hooks, manifest, registration
    "CONTRACT_VERSION", "Audience", "ContractError", "LocalizedText", "Manifest", "ManifestError", "MiniApp",
    "Permission", "Scope", "hookimpl", "read_manifest",
    # the host
    "Host", "HostContext", "HostDep", "HostServiceMissing", "get_host", "host_of", "Cache",
    # errors
    "DomainError",
    # domain events
    "DomainEvent", "MiniAppsLoaded",
    # feed cards, inbox prompts and search
    "FeedCard", "FeedContext", "InboxPrompt", "PromptContext", "SearchQuery", "SearchResult",
    *_HOST_BACKED,
])


def __getattr__(name: str) -> Any:
    """Load a host-backed name on first use and keep it as a module attribute."""
    if name not in _HOST_BACKED:
        raise AttributeError(f"module 'plugins' has no attribute {name!r}")
    value = getattr(importlib.import_module("plugins._sdk"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | _HOST_BACKED)
