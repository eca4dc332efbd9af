"""``superapp miniapps check [ID]``: every mistake a mini-app can make, found before ``serve``.

Each finding is one line naming the mini-app and the field, table, column, type or hook at fault:

- the app builds with every mount-time check (misspelt hooks with a "did you mean", routes outside the
  namespace, permissions checked but not declared, manifests);
- the manifest is valid without coercion (``"order": "40"`` or ``"public": "yes"`` are refused; start-up
  refuses them too, and this repeats the check for manifests start-up validates as Python objects);
- the models agree with the migrations, on a scratch SQLite database migrated from scratch;
- database type names (enums) carry the mini-app's prefix, so two mini-apps' types never collide on PostgreSQL.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from config import Settings
from plugins.manifest import Manifest
from plugins.registry import ContractError, MiniApp


def check(settings: Settings, only: str | None = None) -> tuple[list[MiniApp], list[str]]:
    """The mini-apps checked and every finding (empty when all is well); ``only`` limits it to one id."""
    from core.app import create_app

    with tempfile.TemporaryDirectory(prefix="superapp-check-") as scratch:
        scratch_settings = settings.model_copy(update={
            "database_url": f"sqlite:///{Path(scratch) / 'check.db'}", "scheduler_enabled": False,
            "redis_url": None, "miniapps": [only] if only else settings.miniapps})
        try:
            app = create_app(scratch_settings)
        except ContractError as exc:
            return [], [str(exc)]
        try:
            miniapps: list[MiniApp] = list(app.state.miniapps)
            findings = [*manifest_findings(miniapps), *type_name_findings(miniapps),
                        *drift_findings(app.state.engine, miniapps)]
        finally:
            app.state.engine.dispose()
    return miniapps, findings


def manifest_findings(miniapps: Iterable[MiniApp]) -> list[str]:
    """Manifests validated strictly, as JSON: a string where a number or a boolean belongs is refused."""
    findings = []
    for miniapp in miniapps:
        raw = _raw_manifest(miniapp)
        if raw is None:
            continue
        try:
            Manifest.model_validate_json(json.dumps(raw, default=str), strict=True)
        except ValidationError as exc:
            for error in exc.errors():
                field = ".".join(str(part) for part in error["loc"]) or "(manifest)"
                findings.append(f"mini-app '{miniapp.id}': manifest field '{field}': {error['msg']} "
                                f"(got {error.get('input')!r}; nothing is converted)")
    return findings


def _raw_manifest(miniapp: MiniApp) -> dict[str, Any] | None:
    hook = getattr(miniapp.plugin, "superapp_manifest", None)
    if hook is None:
        return None
    raw = hook()
    if isinstance(raw, Manifest):
        return None  # built in Python: already typed
    return dict(raw) if isinstance(raw, dict) else None


def type_name_findings(miniapps: Iterable[MiniApp]) -> list[str]:
    """Named database types (enums) of a mini-app's tables must start with ``<id>_``."""
    findings = []
    for miniapp in miniapps:
        for model in miniapp.models:
            table = model.__table__  # type: ignore[attr-defined]
            for column in table.columns:
                name = getattr(column.type, "name", None)
                if isinstance(column.type, sa.types.SchemaType) and name and not name.startswith(f"{miniapp.id}_"):
                    findings.append(f"mini-app '{miniapp.id}': table '{table.name}' column '{column.name}': database "
                                    f"type '{name}' must be named with the prefix '{miniapp.id}_' "
                                    f"(sa.Enum(..., name='{miniapp.id}_{name}'))")
    return findings


def drift_findings(engine: sa.Engine, miniapps: list[MiniApp]) -> list[str]:
    """Migrate a scratch database from nothing and compare it with the models, naming mini-app, table and column."""
    from core.migrate import upgrade

    try:
        upgrade(engine, miniapps)
    except Exception as exc:  # a migration that does not run is a finding too
        return [f"migrations fail on a new database: {type(exc).__name__}: {exc}"]
    return schema_findings(engine, miniapps)


def schema_findings(engine: sa.Engine, miniapps: list[MiniApp]) -> list[str]:
    """Where the migrated database ``engine`` and the models differ, naming mini-app, table and column
    (``serve`` refuses to start and ``/readyz`` answers 503 while there are any)."""
    from core.migrate import drift

    findings = []
    for difference in drift(engine, miniapps):
        table, what = describe(difference)
        owner = next((m.id for m in miniapps if table and table.startswith(f"{m.id}_")), None)
        findings.append(f"mini-app '{owner}': {what}" if owner else f"core: {what}")
    return findings


def describe(difference: Any) -> tuple[str | None, str]:
    """An Alembic comparison result as (table, a sentence a developer can act on)."""
    if isinstance(difference, list):  # modify_* results come grouped per column
        difference = difference[0]
    kind = difference[0]
    if kind in ("add_table", "remove_table"):
        table = difference[1].name
        where = "in the models but no migration creates it" if kind == "add_table" else \
            "created by the migrations but not in the models"
        return table, f"table '{table}' is {where}"
    if kind in ("add_column", "remove_column"):
        _, _schema, table, column = difference
        where = "is in the model but no migration adds it" if kind == "add_column" else \
            "is in the migrations but not in the model"
        return table, f"table '{table}' column '{column.name}' {where}"
    if kind.startswith("modify_"):
        _, _schema, table, column = difference[:4]
        what = kind.removeprefix("modify_").replace("_", " ")
        return table, f"table '{table}' column '{column}': the {what} differs between the model and the migrations"
    if kind in ("add_index", "remove_index", "add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        item = difference[1]
        table = getattr(getattr(item, "table", None), "name", None) or getattr(item, "parent", None) and item.parent.name
        side = "the model" if kind.startswith("add") else "the migrations"
        return table, f"table '{table}': {kind.split('_', 1)[1]} '{getattr(item, 'name', item)}' is only in {side}"
    return None, f"models and migrations differ: {difference}"
