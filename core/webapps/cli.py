"""``superapp webapps``: operators register and review outside web mini-apps from the command line."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from sqlmodel import Session

from plugins._errors import DomainError


@contextmanager
def _service() -> Iterator[tuple[Any, Session]]:
    """The web mini-apps service and a database session, from the environment's settings."""
    from config import load_settings
    from core.app import RESERVED_IDS, discover
    from core.db import check_reachable, make_engine
    from core.webapps.service import WebApps

    settings = load_settings()
    engine = make_engine(settings.sqlalchemy_url)
    check_reachable(engine)
    reserved = set(RESERVED_IDS) | {m.id for m in discover(settings)}
    webapps = WebApps(engine, secret=settings.secret_key, key_generation=settings.webapp_key_generation,
                      reserved_ids=reserved)
    try:
        with Session(engine) as db:
            yield webapps, db
    finally:
        engine.dispose()


def _run(step: Callable[[Any, Session], Any]) -> Any:
    """Run one step and commit; a refusal is printed with the field it names, exit status 1."""
    try:
        with _service() as (webapps, db):
            result = step(webapps, db)
            db.commit()
            return result
    except DomainError as exc:
        raise click.ClickException(f"{exc.field}: {exc.detail}" if exc.field else exc.detail) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise click.ClickException(f"{where}: {first['msg']}") from None


@click.group("webapps")
def webapps() -> None:
    """Outside web mini-apps: register, review, publish, widen the rollout, roll back (all audited)."""


@webapps.command("register")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def register(manifest: Path) -> None:
    """Register a web mini-app from a JSON MANIFEST (docs/webapps.md); prints its client secret once."""
    from core.webapps.service import Registration

    def step(service: Any, db: Session) -> str:
        registration = Registration.model_validate(json.loads(manifest.read_text()))
        webapp, _version, secret = service.register(db, registration, actor_id=None, address="cli")
        return f"registered {webapp.id}: version 1 submitted\nclient_id={webapp.id}\nclient_secret={secret}"

    click.echo(_run(step))


@webapps.command("review")
@click.argument("webapp_id")
@click.argument("version", type=int)
@click.option("--approve/--reject", required=True, help="Approve, or reject with --reason.")
@click.option("--reason", default=None, help="Why (required to reject).")
def review(webapp_id: str, version: int, approve: bool, reason: str | None) -> None:
    """Approve or reject a submitted VERSION of WEBAPP_ID."""
    status = _run(lambda s, db: s.review(db, webapp_id, version, approve=approve, reason=reason, actor_id=None,
                                         address="cli").status.value)
    click.echo(f"{webapp_id} version {version}: {status}")


@webapps.command("publish")
@click.argument("webapp_id")
@click.argument("version", type=int)
@click.option("--percent", type=click.IntRange(1, 100), default=100, help="Share of residents (only grows).")
def publish(webapp_id: str, version: int, percent: int) -> None:
    """Publish an approved VERSION to a share of residents."""
    rollout = _run(lambda s, db: s.publish(db, webapp_id, version, rollout_percent=percent, actor_id=None,
                                           address="cli").rollout_percent)
    click.echo(f"{webapp_id} version {version} published to {rollout}% of residents")


@webapps.command("rollout")
@click.argument("webapp_id")
@click.argument("percent", type=click.IntRange(1, 100))
def rollout(webapp_id: str, percent: int) -> None:
    """Widen the rollout of the live version to PERCENT."""
    _run(lambda s, db: s.set_rollout(db, webapp_id, percent, actor_id=None, address="cli"))
    click.echo(f"{webapp_id} rolled out to {percent}%")


@webapps.command("rollback")
@click.argument("webapp_id")
@click.argument("version", type=int)
def rollback(webapp_id: str, version: int) -> None:
    """Make one of the last five published versions live again."""
    _run(lambda s, db: s.rollback(db, webapp_id, version, actor_id=None, address="cli"))
    click.echo(f"{webapp_id}: version {version} is live again")


@webapps.command("revoke-client")
@click.argument("webapp_id")
@click.option("--restore", is_flag=True, help="Restore a revoked client instead.")
def revoke_client(webapp_id: str, restore: bool) -> None:
    """Revoke a backend's client credentials (its tokens stop on the next call)."""
    _run(lambda s, db: s.set_client_revoked(db, webapp_id, not restore, actor_id=None, address="cli"))
    click.echo(f"{webapp_id}: client {'restored' if restore else 'revoked'}")
