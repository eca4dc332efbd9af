"""Schema migrations with Alembic: one branch for core, one per mini-app, all applied by ``upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from core.identity.models import (
    AuditEvent,
    AuthSession,
    DevSignInCode,
    Membership,
    MiniAppConsent,
    RefreshToken,
    User,
)
from core.feed.models import FeedItem, FeedItemUnit
from core.miniapp_settings.models import MiniAppSettingsRow
from core.scheduler import JobRun
from push.models import Device, InboxItem, InboxState, Notification, NotificationAudience, PushOutbox, UnitFollow
from core.units.models import OrgUnit, UnitBoundary
from core.webapps.models import WebApp, WebAppSubject, WebAppUsage, WebAppVersion
from plugins.registry import MiniApp

MIGRATIONS = Path(__file__).parent / "migrations"
CORE_MODELS = (
    OrgUnit, User, Membership, MiniAppConsent, AuthSession, RefreshToken, DevSignInCode, AuditEvent, JobRun,
    FeedItem, FeedItemUnit, Notification, NotificationAudience, InboxItem, InboxState, Device, UnitFollow, PushOutbox,
    MiniAppSettingsRow, UnitBoundary, WebApp, WebAppVersion, WebAppSubject, WebAppUsage,
)


def target_metadata(miniapps: list[MiniApp]) -> MetaData:
    """The tables core and the loaded mini-apps own (other mini-apps' tables are left alone)."""
    metadata = MetaData()
    for model in (*CORE_MODELS, *(m for app in miniapps for m in app.models)):
        model.__table__.to_metadata(metadata)  # type: ignore[attr-defined]
    return metadata


def alembic_config(engine: Engine, miniapps: list[MiniApp]) -> Config:
    """An Alembic config for ``engine`` whose version locations are core's plus each mini-app's."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    locations = [str(MIGRATIONS / "versions")] + [
        str(app.migrations_dir) for app in miniapps if app.migrations_dir is not None
    ]
    config.set_main_option("version_locations", " ".join(locations))
    config.set_main_option("path_separator", "space")
    config.attributes["engine"] = engine
    config.attributes["target_metadata"] = target_metadata(miniapps)
    return config


def upgrade(engine: Engine, miniapps: list[MiniApp], revision: str = "heads") -> None:
    """Apply every pending migration of core and the loaded mini-apps."""
    command.upgrade(alembic_config(engine, miniapps), revision)


def pending_heads(engine: Engine, miniapps: list[MiniApp]) -> set[str]:
    """Head revisions not yet applied to the database (empty when the schema is current)."""
    script = ScriptDirectory.from_config(alembic_config(engine, miniapps))
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    heads = set(script.get_heads())
    applied = set()
    for rev in current:
        applied.update(r.revision for r in script.iterate_revisions(rev, "base"))
    return heads - applied


def drift(engine: Engine, miniapps: list[MiniApp]) -> list[tuple]:
    """Differences between the models and the migrated database (empty when they agree)."""
    from alembic.autogenerate import compare_metadata

    config = alembic_config(engine, miniapps)
    metadata = config.attributes["target_metadata"]
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "include_object": _only_ours(metadata)},
        )
        return list(compare_metadata(context, metadata))


def _only_ours(metadata: MetaData):
    tables = set(metadata.tables)

    def include(obj, name, type_, reflected, compare_to):  # noqa: ANN001 - Alembic's signature
        if type_ == "table":
            return name in tables
        return True

    return include


__all__ = ["SQLModel", "alembic_config", "drift", "pending_heads", "target_metadata", "upgrade"]
