"""The ``superapp`` command: serve, migrate, seed demo data and list mini-apps."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click
from alembic.util.exc import CommandError as AlembicError

from config import Settings, SettingsError, load_settings
from core.db import DatabaseUnavailable, check_reachable, make_engine
from plugins.registry import ContractError


def _fail_cleanly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn configuration, contract and database errors into one line on stderr and exit code 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (SettingsError, ContractError, DatabaseUnavailable) as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(2)
        except AlembicError as exc:
            click.secho(
                f"error: the database's schema history does not match the loaded mini-apps ({exc}); "
                "a mini-app whose migrations were applied may have been disabled or uninstalled",
                fg="red", err=True,
            )
            sys.exit(2)

    return wrapper


def _settings() -> Settings:
    return load_settings()


def as_a_demo() -> None:
    """The demo runs in development (its public secret and development sign-in) unless SUPERAPP_ENV says
    otherwise in the environment or .env; everything else defaults to production."""
    from dotenv import dotenv_values

    named = {k.upper() for k in os.environ} | {k.upper() for k in dotenv_values(".env")}
    if "SUPERAPP_ENV" not in named:
        os.environ["SUPERAPP_ENV"] = "dev"  # inherited by uvicorn's workers too


def _loaded(settings: Settings) -> tuple[Any, list[Any]]:
    from core.app import discover

    miniapps = discover(settings)
    engine = make_engine(settings.sqlalchemy_url)
    check_reachable(engine)
    return engine, miniapps


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hue-superapp", prog_name="superapp")
def main() -> None:
    """Hue super-app host: identity, feed, push and pluggable mini-apps."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes; more than one needs SUPERAPP_REDIS_URL.")
@click.option("--demo", is_flag=True, help="Migrate and load the Hue demo data first.")
@_fail_cleanly
def serve(host: str, port: int, workers: int, demo: bool) -> None:
    """Serve the API, the pages and /ws with uvicorn."""
    import uvicorn

    from core.migrate import pending_heads
    from push.wsprotocol import UVICORN_OPTIONS

    if demo:
        as_a_demo()
    settings = _settings()
    if workers > 1 and not settings.redis_url:
        raise SettingsError("--workers > 1 needs SUPERAPP_REDIS_URL so workers share the broker")
    engine, miniapps = _loaded(settings)
    if demo:
        _upgrade(engine, miniapps)
        _seed_demo(engine, miniapps)
    missing = pending_heads(engine, miniapps)
    if missing:
        raise DatabaseUnavailable(
            f"the database schema is not up to date (pending: {', '.join(sorted(missing))}); "
            "run `superapp db upgrade`"
        )
    from core.checks import schema_findings

    drifted = schema_findings(engine, miniapps)
    if drifted:  # every call to the mini-app would answer 500: refuse, naming it
        raise DatabaseUnavailable("the models and the migrated database differ: " + "; ".join(drifted[:5])
                                  + "; run `superapp miniapps check` for all of it")
    engine.dispose()
    click.echo(f"serving on http://{host}:{port} with {workers} worker(s); {len(miniapps)} mini-app(s)")
    # WebSockets as push/wsprotocol.py explains: a lean protocol, no permessage-deflate, 64 KiB frames.
    uvicorn.run("core.app:create_app_from_env", factory=True, host=host, port=port, workers=workers,
                # X-Forwarded-Proto/-For are honoured by the app itself, from SUPERAPP_TRUSTED_PROXIES only (core/security.py).
                log_config=None, proxy_headers=False, **UVICORN_OPTIONS)


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@_fail_cleanly
def db_upgrade() -> None:
    """Apply every pending migration of core and the enabled mini-apps."""
    engine, miniapps = _loaded(_settings())
    _upgrade(engine, miniapps)


def _upgrade(engine: Any, miniapps: list[Any]) -> None:
    from sqlmodel import Session

    from core.migrate import upgrade
    from core.units.service import load_reference_units

    click.echo("migrating core" + "".join(f", {m.id}" for m in miniapps if m.migrations_dir) + " ...")
    upgrade(engine, miniapps)
    # Hue's city, departments and 40 communes and wards are reference data every deployment needs
    # (production included, where `seed demo` is refused); loading them again changes nothing.
    with Session(engine) as db:
        added = load_reference_units(db)
    click.echo("database is up to date" + (f" ({added} reference units added)" if added else ""))


@main.group()
def units() -> None:
    """Hue's communes and wards: their boundaries."""


@units.command("import-boundaries")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_fail_cleanly
def units_import_boundaries(file: Path) -> None:
    """Load commune and ward boundaries from a GeoJSON FeatureCollection; points are then placed by them."""
    import json

    from sqlmodel import Session

    from core.units.boundaries import BoundaryError, import_boundaries

    engine, _miniapps = _loaded(_settings())
    try:
        collection = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        click.secho(f"error: {file} is not JSON ({exc})", fg="red", err=True)
        sys.exit(2)
    with Session(engine) as db:
        try:
            stored = import_boundaries(db, collection, source=str(file))
        except BoundaryError as exc:
            click.secho(f"error: nothing imported: {exc}", fg="red", err=True)
            sys.exit(2)
    click.echo(f"imported {len(stored)} boundaries: {', '.join(stored)}")


@db.command("check")
@_fail_cleanly
def db_check() -> None:
    """Exit 1 when the models and the migrated database disagree (for CI and mini-app developers)."""
    from core.migrate import drift

    engine, miniapps = _loaded(_settings())
    differences = drift(engine, miniapps)
    for difference in differences:
        click.echo(f"drift: {difference}")
    if differences:
        sys.exit(1)
    click.echo("models and migrations agree")


@db.command("revision")
@click.argument("miniapp_id")
@click.option("-m", "--message", required=True, help="What the revision does; it also names the file.")
@click.option("--empty", is_flag=True, help="Write a blank revision when the models and the database agree.")
@_fail_cleanly
def db_revision(miniapp_id: str, message: str, empty: bool) -> None:
    """Draft a migration for MINIAPP_ID in its own branch and folder, from its models against the database at head."""
    from core.migrate import DraftError, draft_revision

    engine, miniapps = _loaded(_settings())
    try:
        drafted = draft_revision(engine, miniapps, miniapp_id, message, empty=empty)
    except DraftError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)
    if drafted is None:
        click.echo(f"mini-app '{miniapp_id}': its models and the database agree; nothing drafted "
                   "(--empty writes a blank revision)")
        return
    path, operations = drafted
    click.echo(f"drafted {path} ({operations} operation(s)); read it before keeping it, then `superapp db upgrade`")


@main.group()
def seed() -> None:
    """Load data."""


@seed.command("demo")
@_fail_cleanly
def seed_demo() -> None:
    """Load Hue's org units and demo content for every mini-app present; safe to run again."""
    as_a_demo()
    engine, miniapps = _loaded(_settings())
    _seed_demo(engine, miniapps)


def _seed_demo(engine: Any, miniapps: list[Any]) -> None:
    from core.seed import seed_demo as run

    try:
        for line in run(engine, miniapps, env=_settings().env):
            click.echo(line)
    except RuntimeError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)


@main.group()
def miniapps() -> None:
    """Mini-app commands."""


@miniapps.command("list")
@_fail_cleanly
def miniapps_list() -> None:
    """List the loaded mini-apps: id, version and where each comes from."""
    from core.app import discover

    loaded = discover(_settings())
    if not loaded:
        click.echo("no mini-apps loaded")
        return
    width = max(len(m.id) for m in loaded)
    for m in loaded:
        click.echo(f"{m.id:<{width}}  {m.manifest.version:<10}  {m.source}")


@miniapps.command("check")
@click.argument("miniapp_id", required=False)
@_fail_cleanly
def miniapps_check(miniapp_id: str | None) -> None:
    """Check every mini-app (or MINIAPP_ID) before serve: hooks, manifest without coercion, routes,
    permissions, models against migrations, type names. Exit 1 naming each problem."""
    from core.checks import check

    checked, findings = check(_settings(), miniapp_id)
    for finding in findings:
        click.secho(f"error: {finding}", fg="red", err=True)
    if findings:
        sys.exit(1)
    click.echo(f"ok: {', '.join(m.id for m in checked)}")


@main.command("new-miniapp")
@click.argument("name")
@click.option("--directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Where to create the package folder.")
@_fail_cleanly
def new_miniapp(name: str, directory: Path) -> None:
    """Create a pip-installable mini-app package NAME with a manifest, a model, a route, a page and tests."""
    from core.scaffold import ScaffoldError, create_miniapp

    try:
        target = create_miniapp(name, directory)
    except ScaffoldError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"created {target}\n\nnext:\n  pip install -e {target}\n  python -m pytest {target}/tests\n"
               f"  superapp miniapps list")


@main.group()
def docs() -> None:
    """The developer documentation."""


@docs.command("build")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("site"), show_default=True,
              help="Folder for the HTML pages.")
@_fail_cleanly
def docs_build(out: Path) -> None:
    """Render docs/*.md and the README into static HTML pages (index.html is the README)."""
    from core.devdocs import build

    try:
        pages = build(out)
    except FileNotFoundError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"{len(pages)} pages written to {out}/ (open {out}/index.html)")


@main.group()
def users() -> None:
    """Accounts: create officials, list them, print a token for scripts and support."""


@users.command("create-official")
@click.option("--username", required=True)
@click.option("--name", "display_name", required=True, help="The official's full name.")
@click.option("--role", required=True, help="commune_official, department_official, operator or admin.")
@click.option("--unit", default=None, help="The unit the role is held in (the city for operator and admin).")
@_fail_cleanly
def users_create_official(username: str, display_name: str, role: str, unit: str | None) -> None:
    """Create an official; the password is prompted for, or read from stdin when it is not a terminal."""
    from sqlmodel import Session

    from core.identity.service import IdentityError, create_official
    from core.units.service import CITY_ID

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    if unit is None and role in ("operator", "admin"):
        unit = CITY_ID
    if unit is None:
        raise click.UsageError(f"--unit is required for role {role}")
    engine, _ = _loaded(_settings())
    with Session(engine) as db:
        try:
            user = create_official(db, username=username, display_name=display_name, password=password,
                                   memberships=[(role, unit)])
        except IdentityError as exc:
            click.secho(f"error: {exc.field}: {exc.reason}" if exc.field else f"error: {exc.reason}", fg="red", err=True)
            sys.exit(2)
        click.echo(f"created official {user.username} (id {user.id}) as {role} of {unit}")


@users.command("list")
@click.option("--kind", type=click.Choice(["official", "resident"]), default="official", show_default=True)
@_fail_cleanly
def users_list(kind: str) -> None:
    """List accounts with their roles."""
    from sqlmodel import Session, select

    from core.identity.models import Membership, User

    engine, _ = _loaded(_settings())
    with Session(engine) as db:
        accounts = db.exec(select(User).where(User.kind == kind).order_by(User.id)).all()
        for user in accounts:
            roles = db.exec(select(Membership).where(Membership.user_id == user.id)).all()
            label = user.username or user.phone or "-"
            click.echo(f"{user.id:>6}  {label:<24} {user.display_name:<28} "
                       + ", ".join(f"{m.role.value}@{m.unit_id}" for m in roles))
        if not accounts:
            click.echo(f"no {kind} accounts")


@users.command("token")
@click.argument("username")
@_fail_cleanly
def users_token(username: str) -> None:
    """Print an access token for USERNAME (a new session, recorded in the audit log)."""
    from sqlmodel import Session, select

    from core.identity.models import User
    from core.identity.service import start_session

    settings = _settings()
    engine, _ = _loaded(settings)
    with Session(engine) as db:
        user = db.exec(select(User).where(User.username == username.lower())).first()
        if user is None:
            click.secho(f"error: no official with username {username!r}", fg="red", err=True)
            sys.exit(2)
        pair = start_session(db, secret=settings.secret_key, user=user, method="cli", client="superapp users token",
                             address=None)
    click.echo(pair.access_token)


@main.group()
def push() -> None:
    """Push delivery: the FCM outbox worker."""


@push.command("worker")
@click.option("--once", is_flag=True, help="Send what is due now, then exit.")
@click.option("--batch-size", type=click.IntRange(1, 64), default=None,
              help="Outbox rows (up to 500 tokens each) in flight at once (default SUPERAPP_PUSH_BATCH_SIZE).")
@click.option("--lease", type=click.FloatRange(min=1), default=None,
              help="Seconds a claimed row stays leased (default SUPERAPP_PUSH_LEASE_SECONDS).")
@_fail_cleanly
def push_worker(once: bool, batch_size: int | None, lease: float | None) -> None:
    """Run the push outbox worker on its own, until SIGTERM or Ctrl-C (rows in flight are finished first).

    Any number of these may run beside the servers (which run one each unless
    SUPERAPP_PUSH_WORKER_ENABLED=false): a row is only ever sent by the worker holding its lease.
    """
    import asyncio

    from push.outbox import run_standalone

    settings = _settings()
    engine = make_engine(settings.sqlalchemy_url)
    check_reachable(engine)
    overrides: dict[str, Any] = {}
    if batch_size is not None:
        overrides["batch_size"] = batch_size
    if lease is not None:
        overrides["lease_seconds"] = lease
    sending = "FCM" if settings.firebase_project_id and settings.firebase_credentials else "the log (no FCM configured)"
    click.echo(f"push worker: sending to {sending}" + ("; once" if once else "; Ctrl-C to stop"), err=True)
    try:
        processed = asyncio.run(run_standalone(engine, settings, once=once, **overrides))
    finally:
        engine.dispose()
    if once:
        click.echo(f"processed {processed} outbox row(s)")


@main.group()
def retention() -> None:
    """Data retention: delete old inbox items, notifications, outbox rows, audit events and sessions."""


@retention.command("run")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted, delete nothing.")
@_fail_cleanly
def retention_run(dry_run: bool) -> None:
    """Delete rows past their SUPERAPP_RETENTION_* age now, in bounded batches (the daily job does the same)."""
    from core.retention import purge

    settings = _settings()
    engine = make_engine(settings.sqlalchemy_url)
    check_reachable(engine)
    try:
        for outcome in purge(engine, settings, dry_run=dry_run):
            click.echo(outcome.describe())
    finally:
        engine.dispose()


from core.webapps.cli import webapps as _webapps_commands  # noqa: E402  (outside web mini-apps)

main.add_command(_webapps_commands)
