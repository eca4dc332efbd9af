"""Who may watch a thread live: the check behind the ``miniapp:interaction:question:<id>`` channels."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from core.identity.principal import Principal
from miniapps.interaction.models import Question
from miniapps.interaction.service import declared_authorizer, may_see


class ThreadWatch:
    """Answers the hub's question for one host, whose database it learns when the host starts."""

    def __init__(self) -> None:
        self.engine: Any = None
        self.authorizer = declared_authorizer()

    def bind(self, event: Any, host: Any) -> None:
        """On ``MiniAppsLoaded``: remember the host's database."""
        self.engine = host.engine

    def authorize(self, principal: Principal, name: str) -> bool:
        """``question:<id>``: allowed to those who may see that question (runs in a worker thread)."""
        kind, _, rest = name.partition(":")
        if kind != "question" or not rest.isdigit() or self.engine is None:
            return False
        with Session(self.engine) as db:
            question = db.get(Question, int(rest))
            return question is not None and may_see(principal, self.authorizer, question)
