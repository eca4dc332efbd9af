"""Mini-app consent: the scopes each resident granted to each mini-app."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.identity.models import MiniAppConsent
from core.identity.principal import Principal


class ConsentService:
    """Reads and records residents' grants of manifest scopes to mini-apps."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def granted_by_miniapp(self, principal: Principal) -> dict[str, set[str]]:
        """``{miniapp_id: {scope, ...}}`` for a resident; empty for anyone else."""
        if principal.user_id is None or principal.kind != "resident":
            return {}
        granted: dict[str, set[str]] = defaultdict(set)
        with Session(self._engine) as session:
            rows = session.exec(select(MiniAppConsent).where(MiniAppConsent.user_id == principal.user_id))
            for row in rows:
                granted[row.miniapp_id].add(row.scope)
        return dict(granted)
