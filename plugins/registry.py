"""What mini-apps register through the contract, and the ``register`` callbacks that record it.

Each callback is bound to one mini-app id by the host; it namespaces and type-checks what it is given
and raises ``ContractError`` (naming the mini-app) for anything the host could not serve correctly.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, SecretStr, ValidationError
from sqlmodel import SQLModel

from plugins.events import DomainEvent
from plugins.manifest import Audience, LocalizedText, Manifest

PERMISSION_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
ROLES = ("resident", "commune_official", "department_official", "operator", "admin")


class ContractError(RuntimeError):
    """A mini-app broke the contract; start-up stops with this message, which names the mini-app."""


@dataclass(frozen=True)
class Permission:
    """A permission a mini-app checks, with the roles granted it by default."""

    name: str
    description: LocalizedText
    roles: tuple[str, ...]
    miniapp: str


@dataclass(frozen=True)
class EventSubscriber:
    """A handler registered for one domain event class."""

    event: type[DomainEvent]
    handler: Callable[[Any, Any], Any]
    miniapp: str

    @property
    def qualname(self) -> str:
        """``<miniapp>:<handler name>``, used in logs and metrics."""
        return f"{self.miniapp}:{getattr(self.handler, '__qualname__', repr(self.handler))}"


@dataclass(frozen=True)
class ScheduledJob:
    """Periodic work of a mini-app, run once per ``every`` across all workers."""

    id: str
    run: Callable[[Any], Any]
    every: timedelta
    miniapp: str


@dataclass(frozen=True)
class SearchProvider:
    """One mini-app's answer to the one search box."""

    search: Callable[[Any], Any]
    label: LocalizedText
    miniapp: str


@dataclass(frozen=True)
class FeedContributor:
    """A source of feed items."""

    contribute: Callable[[Any], Any]
    miniapp: str


@dataclass(frozen=True)
class InboxPromptProvider:
    """A source of calls to act shown at the top of a reader's inbox."""

    prompts: Callable[[Any], Any]
    miniapp: str


@dataclass(frozen=True)
class MiniAppChannel:
    """A realtime channel prefix of a mini-app and the check that decides who may subscribe."""

    prefix: str
    authorize: Callable[..., Any]
    miniapp: str
    # authorize takes a third argument, the HostContext (for checks that read the database)
    wants_host: bool = False

    @property
    def channel(self) -> str:
        """The full channel name the prefix stands for: ``miniapp:<id>:<prefix>``."""
        return f"miniapp:{self.miniapp}:{self.prefix}"


@dataclass
class MiniApp:
    """A loaded mini-app: its manifest, where it came from, and everything it registered."""

    manifest: Manifest
    source: str  # "built-in" or "<distribution> <version>"
    plugin: Any = field(repr=False)
    api_routers: list[APIRouter] = field(default_factory=list)
    page_routers: list[APIRouter] = field(default_factory=list)
    templates_dirs: list[Path] = field(default_factory=list)
    static_dir: Path | None = None
    root_routers: dict[str, APIRouter] = field(default_factory=dict)
    # GET paths below api_prefix answered from memory before the host's routing (register(before_routing=)).
    answers_before_routing: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    models: list[type[SQLModel]] = field(default_factory=list)
    migrations_dir: Path | None = None
    permissions: list[Permission] = field(default_factory=list)
    subscribers: list[EventSubscriber] = field(default_factory=list)
    feed_contributors: list[FeedContributor] = field(default_factory=list)
    jobs: list[ScheduledJob] = field(default_factory=list)
    search_providers: list[SearchProvider] = field(default_factory=list)
    inbox_prompts: list[InboxPromptProvider] = field(default_factory=list)
    demo_loaders: list[Callable[[Any], Any]] = field(default_factory=list)
    channels: list[MiniAppChannel] = field(default_factory=list)
    settings_model: type[BaseModel] | None = None
    # Changed hooks it still implements (plugins.hookspecs.DEPRECATED_HOOKS): loaded, with a warning.
    deprecated_hooks: list[Any] = field(default_factory=list)

    @property
    def id(self) -> str:
        """The mini-app id (its manifest id)."""
        return self.manifest.id

    @property
    def api_prefix(self) -> str:
        """Where the mini-app's JSON API is mounted."""
        return f"/api/miniapps/{self.id}"

    @property
    def page_prefix(self) -> str:
        """Where the mini-app's pages are mounted."""
        return f"/m/{self.id}"

    def audiences(self) -> set[Audience]:
        """The audiences the manifest names."""
        return set(self.manifest.audiences)


def _localized(value: LocalizedText | Mapping[str, str], *, what: str, miniapp: str) -> LocalizedText:
    try:
        return value if isinstance(value, LocalizedText) else LocalizedText.model_validate(value)
    except Exception as exc:  # pydantic's error names the missing language
        raise ContractError(f"mini-app '{miniapp}': {what} needs 'vi' and 'en' texts ({exc})") from None


class _Bound:
    """Base of the register callbacks: knows which mini-app it writes to."""

    def __init__(self, miniapp: MiniApp) -> None:
        self.miniapp = miniapp

    def _fail(self, message: str) -> ContractError:
        return ContractError(f"mini-app '{self.miniapp.id}': {message}")


class RegisterRoutes(_Bound):
    """``register(api=, pages=, templates=, static=, roots=, before_routing=)``: see ``superapp_register_routes``."""

    def __call__(
        self,
        *,
        api: APIRouter | None = None,
        pages: APIRouter | None = None,
        templates: str | Path | None = None,
        static: str | Path | None = None,
        roots: Mapping[str, APIRouter] | None = None,
        before_routing: Mapping[str, Callable[[Any], Any]] | None = None,
    ) -> None:
        for kind, router in (("api", api), ("pages", pages)):
            if router is None:
                continue
            if not isinstance(router, APIRouter):
                raise self._fail(f"register({kind}=...) needs a fastapi.APIRouter, got {type(router).__name__}")
            if router.prefix:
                raise self._fail(
                    f"register({kind}=...): leave the router's prefix empty ({router.prefix!r}); "
                    "the host mounts it under the mini-app's namespace"
                )
            (self.miniapp.api_routers if kind == "api" else self.miniapp.page_routers).append(router)
        for root, router in (roots or {}).items():
            if root not in self.miniapp.manifest.roots:
                raise self._fail(f"root {root!r} is not declared in the manifest's 'roots' "
                                 f"{self.miniapp.manifest.roots}")
            if not isinstance(router, APIRouter) or router.prefix:
                raise self._fail(f"register(roots={{{root!r}: ...}}) needs a fastapi.APIRouter with an "
                                 "empty prefix")
            if root in self.miniapp.root_routers:
                raise self._fail(f"root {root!r} registered twice")
            self.miniapp.root_routers[root] = router
        for path, answer in (before_routing or {}).items():
            self._answer_before_routing(path, answer)
        if templates is not None:
            self.miniapp.templates_dirs.append(self._existing_dir(templates, "templates"))
        if static is not None:
            if self.miniapp.static_dir is not None:
                raise self._fail("static files were registered twice")
            self.miniapp.static_dir = self._existing_dir(static, "static")

    def _answer_before_routing(self, path: str, answer: Callable[[Any], Any]) -> None:
        if not path.startswith("/") or "{" in path or "?" in path or not callable(answer):
            raise self._fail(f"register(before_routing={{{path!r}: ...}}) needs a literal path below the "
                             "mini-app's API (such as '/layer.json') and a function of the request")
        # What the answer leaves (None, an error) goes to the routes: one of them must answer the path.
        routed = {getattr(route, "path", None) for router in self.miniapp.api_routers for route in router.routes
                  if "GET" in (getattr(route, "methods", None) or ())}
        if path not in routed:
            raise self._fail(f"register(before_routing={{{path!r}: ...}}): no GET route of the mini-app's API "
                             "answers that path (register the api router with it, or before it)")
        if path in self.miniapp.answers_before_routing:
            raise self._fail(f"before_routing path {path!r} registered twice")
        self.miniapp.answers_before_routing[path] = answer

    def _existing_dir(self, path: str | Path, what: str) -> Path:
        path = Path(path)
        if not path.is_dir():
            raise self._fail(f"{what} folder {str(path)!r} does not exist")
        return path


class RegisterModels(_Bound):
    """``register(*models, migrations=path)``: see ``superapp_register_models``."""

    def __call__(self, *models: type[SQLModel], migrations: str | Path | None = None) -> None:
        prefix = f"{self.miniapp.id}_"
        for model in models:
            table = getattr(model, "__table__", None)
            if not (isinstance(model, type) and issubclass(model, SQLModel)) or table is None:
                raise self._fail(f"{model!r} is not a SQLModel table (class X(SQLModel, table=True))")
            if not table.name.startswith(prefix):
                raise self._fail(f"table {table.name!r} must be named with the prefix {prefix!r}")
            self.miniapp.models.append(model)
        if migrations is not None:
            path = Path(migrations)
            if not path.is_dir():
                raise self._fail(f"migrations folder {str(path)!r} does not exist")
            self.miniapp.migrations_dir = path


class RegisterPermission(_Bound):
    """``register(name, description=..., roles=[...])``: see ``superapp_register_permissions``."""

    def __call__(
        self,
        name: str,
        *,
        description: LocalizedText | Mapping[str, str],
        roles: Iterable[str] = (),
    ) -> None:
        if not PERMISSION_NAME.match(name):
            raise self._fail(f"permission name {name!r} must be dotted lower-case words")
        roles = tuple(roles)
        unknown = [role for role in roles if role not in ROLES]
        if unknown:
            raise self._fail(f"permission {name!r}: unknown role(s) {unknown}; roles are {list(ROLES)}")
        full = f"{self.miniapp.id}.{name}"
        if any(p.name == full for p in self.miniapp.permissions):
            raise self._fail(f"permission {full!r} declared twice")
        text = _localized(description, what=f"permission {name!r} description", miniapp=self.miniapp.id)
        self.miniapp.permissions.append(Permission(full, text, roles, self.miniapp.id))


class RegisterEventSubscriber(_Bound):
    """``register(EventClass, handler)``: see ``superapp_register_event_subscribers``."""

    def __call__(self, event: type[DomainEvent], handler: Callable[[Any, Any], Any]) -> None:
        if not (isinstance(event, type) and issubclass(event, DomainEvent)):
            raise self._fail(f"{event!r} is not a DomainEvent subclass")
        if not callable(handler):
            raise self._fail(f"handler for {event.name} is not callable")
        _needs_arguments(handler, 2, self._fail, what=f"handler for {event.name}")
        self.miniapp.subscribers.append(EventSubscriber(event, handler, self.miniapp.id))


class RegisterFeedContributor(_Bound):
    """``register(contributor)``: see ``superapp_register_feed_contributors``."""

    def __call__(self, contributor: Callable[[Any], Any]) -> None:
        _needs_arguments(contributor, 1, self._fail, what="feed contributor")
        self.miniapp.feed_contributors.append(FeedContributor(contributor, self.miniapp.id))


class RegisterScheduledJob(_Bound):
    """``register(name, run, every=timedelta)``: see ``superapp_register_scheduled_jobs``."""

    def __call__(self, name: str, run: Callable[[Any], Any], *, every: timedelta) -> None:
        if not PERMISSION_NAME.match(name):
            raise self._fail(f"job name {name!r} must be lower-case words")
        if not isinstance(every, timedelta) or every < timedelta(seconds=1):
            raise self._fail(f"job {name!r}: every= must be a timedelta of at least one second")
        _needs_arguments(run, 1, self._fail, what=f"job {name!r}")
        job_id = f"{self.miniapp.id}.{name}"
        if any(job.id == job_id for job in self.miniapp.jobs):
            raise self._fail(f"job {job_id!r} registered twice")
        self.miniapp.jobs.append(ScheduledJob(job_id, run, every, self.miniapp.id))


class RegisterSearchProvider(_Bound):
    """``register(provider, label=...)``: see ``superapp_register_search_providers``."""

    def __call__(self, provider: Callable[[Any], Any], *, label: LocalizedText | Mapping[str, str]) -> None:
        _needs_arguments(provider, 1, self._fail, what="search provider")
        text = _localized(label, what="search provider label", miniapp=self.miniapp.id)
        self.miniapp.search_providers.append(SearchProvider(provider, text, self.miniapp.id))


class RegisterInboxPrompt(_Bound):
    """``register(provider)``: see ``superapp_register_inbox_prompts``."""

    def __call__(self, provider: Callable[[Any], Any]) -> None:
        _needs_arguments(provider, 1, self._fail, what="inbox prompt provider")
        if inspect.iscoroutinefunction(provider):
            raise self._fail("inbox prompt provider must be a plain function (it runs in the request's thread)")
        self.miniapp.inbox_prompts.append(InboxPromptProvider(provider, self.miniapp.id))


class RegisterDemoData(_Bound):
    """``register(loader)``: see ``superapp_register_demo_data``."""

    def __call__(self, loader: Callable[[Any], Any]) -> None:
        _needs_arguments(loader, 1, self._fail, what="demo data loader")
        self.miniapp.demo_loaders.append(loader)


SETTING_TYPES = ("string", "integer", "number", "boolean")


def settings_properties(model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """Each field's JSON schema, with an enum's ``$ref`` replaced by its definition."""
    schema = model.model_json_schema()
    properties = {}
    for name, prop in schema.get("properties", {}).items():
        ref = prop.get("$ref") or (prop.get("allOf") or [{}])[0].get("$ref")
        if ref:
            extra = {k: v for k, v in prop.items() if k not in ("$ref", "allOf")}
            prop = {**schema.get("$defs", {}).get(ref.rsplit("/", 1)[-1], {}), **extra}
        properties[name] = prop
    return properties


class RegisterSettings(_Bound):
    """``register(SettingsModel)``: see ``superapp_register_settings``."""

    def __call__(self, model: type[BaseModel]) -> None:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise self._fail(f"settings must be a pydantic BaseModel class, got {model!r}")
        if self.miniapp.settings_model is not None:
            raise self._fail("settings registered twice")
        try:
            model()
        except ValidationError as exc:
            names = sorted({".".join(map(str, e["loc"])) for e in exc.errors()})
            raise self._fail(f"settings field(s) {names} need defaults: the mini-app runs before an admin edits them") from exc
        properties = settings_properties(model)
        for name, info in model.model_fields.items():
            kind = properties.get(info.alias or name, {}).get("type")
            if info.annotation is not SecretStr and kind not in SETTING_TYPES:
                raise self._fail(
                    f"settings field {name!r}: a form can edit {list(SETTING_TYPES)}, an enum of those, or "
                    "SecretStr; keep structured values out of settings"
                )
        self.miniapp.settings_model = model


CHANNEL_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_.\-]*(:[a-z0-9][a-z0-9_.\-]*)*$")


class RegisterChannel(_Bound):
    """``register(name_prefix, authorize)``: see ``superapp_register_channels``."""

    def __call__(self, name_prefix: str, authorize: Callable[[Any, str], Any]) -> None:
        if not isinstance(name_prefix, str) or len(name_prefix) > 100 or not CHANNEL_PREFIX.match(name_prefix):
            raise self._fail(
                f"channel prefix {name_prefix!r} must be lower-case words, digits, '.', '_' or '-', "
                "':'-separated (it becomes miniapp:<id>:<prefix>)"
            )
        wants_host = _accepts_arguments(authorize, 3)
        if not wants_host:
            _needs_arguments(authorize, 2, self._fail, what=f"channel {name_prefix!r} authorize")
        if any(c.prefix == name_prefix for c in self.miniapp.channels):
            raise self._fail(f"channel prefix {name_prefix!r} registered twice")
        self.miniapp.channels.append(MiniAppChannel(name_prefix, authorize, self.miniapp.id, wants_host))


def _accepts_arguments(func: Callable[..., Any], count: int) -> bool:
    """True when ``func`` can be called with ``count`` positional arguments."""
    try:
        inspect.signature(func).bind(*([None] * count))
    except (TypeError, ValueError):
        return False
    return True


def _needs_arguments(func: Callable[..., Any], count: int, fail: Callable[[str], Exception], *, what: str) -> None:
    """Refuse a callable that cannot be called with ``count`` positional arguments."""
    if not callable(func):
        raise fail(f"{what} is not callable")
    try:
        inspect.signature(func).bind(*([None] * count))
    except TypeError:
        raise fail(f"{what} must accept exactly {count} positional argument(s)") from None
    except ValueError:  # builtins without a signature: trust them
        pass
