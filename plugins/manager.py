"""Discovering, validating and registering mini-apps: built-ins plus the ``superapp.miniapps`` entry points."""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy

from plugins import hookspecs
from plugins._compat import warn_host_imports
from plugins.manifest import ManifestError, semver_tuple, validate_manifest
from plugins.registry import (
    ContractError,
    MiniApp,
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

ENTRY_POINT_GROUP = "superapp.miniapps"
log = logging.getLogger(__name__)

# Registration hooks, in the order the host calls them, with the callback each receives.
REGISTRATION_HOOKS: tuple[tuple[str, type], ...] = (
    ("superapp_register_models", RegisterModels),
    ("superapp_register_permissions", RegisterPermission),
    ("superapp_register_settings", RegisterSettings),
    ("superapp_register_routes", RegisterRoutes),
    ("superapp_register_event_subscribers", RegisterEventSubscriber),
    ("superapp_register_feed_contributors", RegisterFeedContributor),
    ("superapp_register_scheduled_jobs", RegisterScheduledJob),
    ("superapp_register_search_providers", RegisterSearchProvider),
    ("superapp_register_inbox_prompts", RegisterInboxPrompt),
    ("superapp_register_channels", RegisterChannel),
    ("superapp_register_demo_data", RegisterDemoData),
)


class MiniAppPluginManager(pluggy.PluginManager):
    """A pluggy manager that treats every ``superapp_*`` function as a hook implementation.

    pytest does the same for ``pytest_*``: it means a misspelt hook name is reported by
    ``check_pending()`` instead of being silently ignored because it lacked a marker.
    """

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        """Accept ``superapp_*`` functions even without ``@hookimpl``."""
        if name in hookspecs.DEPRECATED_HOOKS:
            return None  # load_miniapps calls it itself, through its replacement's register callback
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith(f"{hookspecs.PROJECT}_"):
            method = getattr(plugin, name, None)
            if inspect.isroutine(method):
                return {}
        return opts


@dataclass(frozen=True)
class Candidate:
    """A mini-app found on this machine, before it is loaded."""

    id: str
    source: str  # "built-in" or "<distribution> <version>"
    load: Any  # zero-argument callable returning the plugin module


def did_you_mean(message: str) -> str:
    """``"; did you mean 'superapp_register_routes'?"`` for an unknown hook close to a real one, else ``""``."""
    import difflib
    import re

    unknown = re.search(r"unknown hook '([^']+)'", message)
    if not unknown:
        return ""
    known = [n for n in dir(hookspecs) if n.startswith(f"{hookspecs.PROJECT}_")] + list(hookspecs.DEPRECATED_HOOKS)
    close = difflib.get_close_matches(unknown.group(1), known, n=1, cutoff=0.75)
    return f"; did you mean '{close[0]}'?" if close else ""


def find_candidates(*, builtin_package: str | None, use_entry_points: bool) -> list[Candidate]:
    """Every mini-app on this machine: built-in subpackages, then entry points, in a stable order."""
    found: list[Candidate] = []
    if builtin_package:
        package = importlib.import_module(builtin_package)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            if info.ispkg and not info.name.startswith("_"):
                module_name = f"{builtin_package}.{info.name}"
                found.append(Candidate(info.name, "built-in", lambda m=module_name: importlib.import_module(m)))
    if use_entry_points:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else ep.value
            found.append(Candidate(ep.name, dist, ep.load))
    return found


def select(candidates: Iterable[Candidate], *, allow: list[str] | None, deny: list[str]) -> list[Candidate]:
    """Apply the allowlist and the disabled list; two candidates with one id stop start-up."""
    candidates = list(candidates)
    by_id: dict[str, Candidate] = {}
    for candidate in candidates:
        if candidate.id in by_id:
            other = by_id[candidate.id]
            raise ContractError(
                f"mini-app id '{candidate.id}' is claimed twice: by {other.source} and by {candidate.source}"
            )
        by_id[candidate.id] = candidate
    if allow is not None:
        unknown = sorted(set(allow) - set(by_id))
        if unknown:
            raise ContractError(
                f"SUPERAPP_MINIAPPS names mini-app(s) not installed: {', '.join(unknown)} "
                f"(found: {', '.join(sorted(by_id)) or 'none'})"
            )
    return [c for c in candidates if (allow is None or c.id in allow) and c.id not in deny]


def load_miniapps(candidates: Iterable[Candidate], *, host_version: str) -> tuple[pluggy.PluginManager, list[MiniApp]]:
    """Import, validate and register ``candidates``; any broken mini-app raises, naming it."""
    pm = MiniAppPluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    modules: list[tuple[Candidate, ModuleType]] = []
    for candidate in candidates:
        try:
            module = candidate.load()
        except Exception as exc:
            raise ContractError(
                f"mini-app '{candidate.id}' ({candidate.source}) failed to import: {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(module, ModuleType):
            warn_host_imports(candidate.id, module)  # contract 1.1 paths: warned once, still loaded
        try:
            pm.register(module, name=candidate.id)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise ContractError(f"mini-app '{candidate.id}' ({candidate.source}): {exc}") from exc
        modules.append((candidate, module))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) if exc.plugin is not None else "?"
        raise ContractError(
            f"mini-app '{name}': {exc}{did_you_mean(str(exc))}; the hooks are listed in plugins/hookspecs.py"
        ) from exc

    host = semver_tuple(host_version)
    miniapps: list[MiniApp] = []
    for candidate, module in modules:
        manifests = _call_for(pm, candidate.id, "superapp_manifest")
        if len(manifests) != 1:
            raise ContractError(
                f"mini-app '{candidate.id}' ({candidate.source}): must implement superapp_manifest exactly once"
            )
        try:
            manifest = validate_manifest(manifests[0], miniapp=candidate.id)
        except ManifestError as exc:
            raise ContractError(f"{exc} ({candidate.source})") from None
        needed = semver_tuple(manifest.min_host_version)
        if needed[0] != host[0] or needed > host:
            raise ContractError(
                f"mini-app '{candidate.id}' ({candidate.source}): field 'min_host_version': needs host "
                f"contract {manifest.min_host_version}, this host provides {host_version}"
            )
        miniapp = MiniApp(manifest=manifest, source=candidate.source, plugin=module)
        miniapp.deprecated_hooks = _deprecated_hooks(miniapp, host_version)
        miniapps.append(miniapp)

    for miniapp in miniapps:
        for hook_name, callback in REGISTRATION_HOOKS:
            _call_for(pm, miniapp.id, hook_name, register=callback(miniapp))
            for old in miniapp.deprecated_hooks:
                if old.replacement == hook_name:
                    _call_deprecated(miniapp, old, register=callback(miniapp))
    return pm, miniapps


def _deprecated_hooks(miniapp: MiniApp, host_version: str) -> list[hookspecs.Deprecation]:
    """The changed hooks ``miniapp`` still implements: a warning each, or a refusal once removed."""
    found = []
    for name, deprecation in hookspecs.DEPRECATED_HOOKS.items():
        if not inspect.isroutine(getattr(miniapp.plugin, name, None)):
            continue
        advice = f"{deprecation.how} (docs/hooks.md, 'Changing the contract')"
        if semver_tuple(host_version) >= semver_tuple(deprecation.removed_in):
            raise ContractError(f"mini-app '{miniapp.id}' ({miniapp.source}): hook {name} was removed in contract "
                                f"{deprecation.removed_in}; implement {deprecation.replacement} instead: {advice}")
        message = (f"mini-app '{miniapp.id}' ({miniapp.source}): hook {name} is deprecated since contract "
                   f"{deprecation.since} and will not load from {deprecation.removed_in}; implement "
                   f"{deprecation.replacement} instead: {advice}")
        log.warning(message)
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        found.append(deprecation)
    return found


def _call_deprecated(miniapp: MiniApp, deprecation: hookspecs.Deprecation, **kwargs: Any) -> None:
    """Call a deprecated hook of ``miniapp`` with its replacement's arguments, errors named as for any hook."""
    try:
        getattr(miniapp.plugin, deprecation.hook)(**kwargs)
    except ContractError:
        raise
    except Exception as exc:
        raise ContractError(f"mini-app '{miniapp.id}': {deprecation.hook} raised {type(exc).__name__}: {exc}") from exc


def _call_for(pm: pluggy.PluginManager, plugin_name: str, hook_name: str, **kwargs: Any) -> list[Any]:
    """Call one hook for one mini-app only, so its ``register`` callback is bound to that mini-app."""
    others = [p for name, p in pm.list_name_plugin() if name != plugin_name]
    caller = pm.subset_hook_caller(hook_name, remove_plugins=others)
    try:
        results: list[Any] = caller(**kwargs)
        return results
    except ContractError:
        raise
    except Exception as exc:
        raise ContractError(f"mini-app '{plugin_name}': {hook_name} raised {type(exc).__name__}: {exc}") from exc
