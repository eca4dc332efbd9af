"""Mini-app consent: the scopes each resident granted to each mini-app."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.identity.models import MiniAppConsent
from core.identity.principal import Principal
from core.identity.service import audit


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

    def grant(self, *, user_id: int, miniapp_id: str, scope: str, address: str | None) -> bool:
        """Record a grant; False when it was already granted."""
        with Session(self._engine) as session:
            if session.get(MiniAppConsent, (user_id, miniapp_id, scope)) is not None:
                return False
            session.add(MiniAppConsent(user_id=user_id, miniapp_id=miniapp_id, scope=scope))
            audit(session, "consent_granted", actor_id=user_id, subject_id=user_id, address=address,
                  miniapp=miniapp_id, scope=scope)
            try:
                session.commit()
            except IntegrityError:  # the same grant, sent twice at once: the other one recorded it
                return False
        return True

    def revoke(self, *, user_id: int, miniapp_id: str, scope: str, address: str | None) -> bool:
        """Withdraw a grant; False when there was none."""
        with Session(self._engine) as session:
            row = session.get(MiniAppConsent, (user_id, miniapp_id, scope))
            if row is None:
                return False
            session.delete(row)
            audit(session, "consent_revoked", actor_id=user_id, subject_id=user_id, address=address,
                  miniapp=miniapp_id, scope=scope)
            session.commit()
        return True
