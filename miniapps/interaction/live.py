"""Who may watch a thread live: the check behind the ``miniapp:interaction:question:<id>`` channels."""

from __future__ import annotations

from typing import Any

from miniapps.interaction.models import Question
from miniapps.interaction.service import declared_authorizer, may_see
from plugins import Principal

_AUTHORIZER = declared_authorizer()


def may_watch(principal: Principal, name: str, host: Any) -> bool:
    """``question:<id>``: allowed to those who may see that question (runs in a worker thread)."""
    kind, _, rest = name.partition(":")
    if kind != "question" or not rest.isdigit() or host is None:
        return False
    with host.session() as db:
        question = db.get(Question, int(rest))
        return question is not None and may_see(principal, _AUTHORIZER, question)
