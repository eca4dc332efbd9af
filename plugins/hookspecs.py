"""Every hook of the mini-app contract, in one module, grouped by lifecycle phase.

A mini-app is a Python module (usually its package ``__init__``) that implements some of these
hooks with ``@hookimpl``. The host calls each hook *once per mini-app*, handing it a ``register``
callback already bound to that mini-app's id, so everything it registers is namespaced under the id
(routes under ``/api/miniapps/<id>/`` and ``/m/<id>/``, templates under ``<id>/``, permissions as
``<id>.<name>``) and checked at start-up. Any function named ``superapp_*`` in a mini-app that is not
listed here stops start-up (a misspelt hook is never silently ignored).

The docs page ``docs/hooks.md`` has a section for every hook here; a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from plugins.manifest import Manifest
    from plugins.registry import (
        RegisterChannel,
        RegisterDemoData,
        RegisterEventSubscriber,
        RegisterFeedContributor,
        RegisterInboxPrompt,
        RegisterModels,
        RegisterPermission,
        RegisterRoutes,
        RegisterScheduledJob,
        RegisterSearchProvider,
        RegisterSettings,
    )

PROJECT = "superapp"
hookspec = pluggy.HookspecMarker(PROJECT)

# Version of this contract (SemVer). A manifest's ``min_host_version`` is compared with it: same
# major, not newer. Minor versions only add (1.1.0: superapp_register_settings and manifest roots;
# 1.2.0: the SDK, every name a mini-app imports from ``plugins``, with a typed ``Host``).
CONTRACT_VERSION = "1.3.0"


@dataclass(frozen=True)
class Deprecation:
    """A hook that changed: the host still calls it (and warns) until ``removed_in``, then refuses it."""

    hook: str  # the old hook name
    replacement: str  # the hook to implement instead; the old one is called with its ``register``
    since: str  # contract version that deprecated it
    removed_in: str  # contract version from which a mini-app implementing it does not load
    how: str  # one sentence: what to change in the mini-app


# Changed hooks, by old name. The policy (docs/hooks.md, "Changing the contract"): a hook is renamed or
# reshaped in a minor version with its old form listed here, so mini-apps keep loading with a warning
# that names the fix; the old form is refused from the next major version. None has changed yet.
DEPRECATED_HOOKS: dict[str, Deprecation] = {}


# --- Phase 1: declaration ----------------------------------------------------------------------


@hookspec
def superapp_manifest() -> Manifest | Mapping[str, Any]:  # type: ignore[empty-body]  # a spec: only implementations run
    """Return the mini-app's manifest: a ``Manifest`` or a mapping validated as one.

    Called once per mini-app before anything else; a manifest that fails validation stops start-up
    with a message naming the mini-app and each bad field. ``plugins.read_manifest(__file__)`` reads a
    ``manifest.json`` kept beside the module. Required: exactly one implementation per mini-app.
    """


# --- Phase 2: registration ---------------------------------------------------------------------
# Called once per mini-app at start-up, mini-apps in discovery order (built-ins, then entry points,
# each by id). For each mini-app the host calls: models, permissions, settings, routes, event subscribers,
# feed contributors, scheduled jobs, search providers, channels, demo data
# (plugins.manager.REGISTRATION_HOOKS).


@hookspec
def superapp_register_routes(register: RegisterRoutes) -> None:
    """Add the mini-app's JSON API, its pages, its templates and its static files.

    ``register(api=router)`` mounts an ``APIRouter`` under ``/api/miniapps/<id>``;
    ``register(pages=router)`` mounts HTML pages under ``/m/<id>`` (the manifest's ``entry_page`` is
    relative to it); ``register(templates=path)`` makes the folder's templates loadable as
    ``<id>/<name>``; ``register(static=path)`` serves files under ``/static/m/<id>/``. Two routes with
    the same method and path stop start-up. ``register(roots={"/open311": router})`` serves an open
    standard at a fixed top-level path, which the manifest must declare in ``roots``.
    ``register(before_routing={"/layer.json": answer})`` lets the host answer ``GET`` of that path (below
    ``/api/miniapps/<id>``) before routing: ``answer(request)`` gets a Starlette ``Request`` and returns
    a ``Response`` kept in memory, or None to let the request go on to the routes as usual (so the route
    must answer the same path too). It runs on the event loop for every such request: memory only, no
    I/O, no authentication (the host's middleware, such as rate limits, still applies). For the hottest
    public answers, where FastAPI's routing would cost more than the answer. Results are not combined;
    the hook returns nothing.
    """


@hookspec
def superapp_register_models(register: RegisterModels) -> None:
    """Declare the mini-app's SQLModel tables and its Alembic migration folder.

    ``register(*models, migrations=path)``: every table name must start with ``<id>_`` and the
    migration folder is an Alembic branch labelled ``<id>``. ``superapp db upgrade`` applies it and
    the contract kit checks that models and migrations agree.
    """


@hookspec
def superapp_register_permissions(register: RegisterPermission) -> None:
    """Declare the permissions the mini-app checks and the roles granted them by default.

    ``register("reports.handle", description=LocalizedText | dict, roles=["commune_official"])``
    declares ``<id>.reports.handle``. Routes check permissions with the host's permission dependency;
    checking an undeclared permission is an error.
    """


@hookspec
def superapp_register_settings(register: RegisterSettings) -> None:
    """Declare the settings an admin may change at run time, as one pydantic model.

    ``register(FestivalSettings)``: every field needs a default (the mini-app runs before anyone edits
    it) and is a string, integer, number, boolean, an enum of those, or ``SecretStr``. Admins edit them
    on ``/admin/miniapps/<id>/settings``, a form generated from the model's JSON schema; ``SecretStr``
    values are stored encrypted and never shown again. Read them with
    ``request.app.state.miniapp_settings.get("<id>")`` or ``host.miniapp_settings.get("<id>")``.
    """


@hookspec
def superapp_register_event_subscribers(register: RegisterEventSubscriber) -> None:
    """Subscribe to domain events published by core or any mini-app.

    ``register(EventClass, handler)``; ``handler(event, host)`` may be a function or a coroutine
    function; ``host`` is a ``plugins.context.HostContext`` (database sessions, settings, publishing).
    Handlers run after the publisher's work; a handler that raises is logged and counted and affects
    neither the other handlers nor the publisher.
    """


@hookspec
def superapp_register_feed_contributors(register: RegisterFeedContributor) -> None:
    """Contribute items to the resident's news and warning feed.

    ``register(contributor)``: ``contributor(context)`` returns (or awaits to) a list of feed items
    for the reader described by ``context``. Every contributor is asked; results are merged.
    """


@hookspec
def superapp_register_scheduled_jobs(register: RegisterScheduledJob) -> None:
    """Run periodic work, once per period across all workers and machines.

    ``register("escalate_overdue", run, every=timedelta(minutes=15))``; ``run(host)`` may be a
    coroutine function; ``host`` is a ``plugins.context.HostContext``. The host records each period's run in the database so a period runs once however many
    workers serve; a failing run is logged and counted and retried next period.
    """


@hookspec
def superapp_register_search_providers(register: RegisterSearchProvider) -> None:
    """Answer the one search box across all mini-apps.

    ``register(provider, label=LocalizedText | dict)``: ``provider(query)`` gets a
    ``plugins.search.SearchQuery`` and returns (or awaits to) a list of ``SearchResult``. The host fans out to every provider the caller may use and merges the results
    with their source.
    """


@hookspec
def superapp_register_inbox_prompts(register: RegisterInboxPrompt) -> None:
    """Ask a reader, at the top of their inbox, to act on something of their own (rate a resolved report).

    ``register(provider)``: ``provider(context)`` gets a ``plugins.inbox.PromptContext`` and returns a
    list of ``plugins.inbox.InboxPrompt`` (at most ``context.limit``), in the caller's request thread. A
    prompt shows until the provider stops returning it; a provider that raises is logged and left out.
    """


@hookspec
def superapp_register_demo_data(register: RegisterDemoData) -> None:
    """Load demo content when an operator runs ``superapp seed demo``.

    ``register(loader)``: ``loader(host)`` gets a ``plugins.context.HostContext`` after the host
    has loaded Hue's org units and the demo accounts, and returns an iterable of progress lines (or
    None). It must be idempotent: ``seed demo`` may run again on the same database. Loaders run in
    mini-app order; a loader that raises stops the seeding with a message naming the mini-app.
    """


@hookspec
def superapp_register_channels(register: RegisterChannel) -> None:
    """Open realtime channels ``miniapp:<id>:<name>`` on ``/ws`` and decide who may subscribe.

    ``register("live", authorize)`` covers ``miniapp:<id>:live`` and ``miniapp:<id>:live:<more>``;
    ``authorize(principal, name)`` gets the signed-in ``Principal`` and the name after
    ``miniapp:<id>:`` (``authorize(principal, name, host)`` also gets the ``HostContext``, for checks
    that read the database) and returns (or awaits to) ``True`` to allow; anything else, an exception or a
    slow answer refuses. Results are not combined across mini-apps: each mini-app decides for its own
    names only, and within one mini-app the longest registered prefix that matches decides. Publish
    with ``await app.state.realtime.publish("miniapp:<id>:live", {...})``. After a change of who may
    read an object, ``await app.state.realtime.rights_changed("miniapp:<id>:live:<object>")`` runs the
    same ``authorize`` again for every open subscription of that channel (docs/push.md).
    """
