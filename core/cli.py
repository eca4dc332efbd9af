"""The ``superapp`` command: serve, migrate, seed demo data and list mini-apps."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

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

    return wrapper


def _settings() -> Settings:
    return load_settings()


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
    engine.dispose()
    click.echo(f"serving on http://{host}:{port} with {workers} worker(s); {len(miniapps)} mini-app(s)")
    uvicorn.run("core.app:create_app_from_env", factory=True, host=host, port=port, workers=workers,
                log_config=None, proxy_headers=True, ws="websockets-sansio")


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
    from core.migrate import upgrade

    click.echo("migrating core" + "".join(f", {m.id}" for m in miniapps if m.migrations_dir) + " ...")
    upgrade(engine, miniapps)
    click.echo("database is up to date")


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


@main.group()
def seed() -> None:
    """Load data."""


@seed.command("demo")
@_fail_cleanly
def seed_demo() -> None:
    """Load Hue's org units and demo content for every mini-app present; safe to run again."""
    engine, miniapps = _loaded(_settings())
    _seed_demo(engine, miniapps)


def _seed_demo(engine: Any, miniapps: list[Any]) -> None:
    from core.seed import seed_demo as run

    for line in run(engine, miniapps):
        click.echo(line)


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
