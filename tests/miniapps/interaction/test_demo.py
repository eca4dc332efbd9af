"""The demo loader: officials for Phu Vang and the Department of Agriculture and Environment, answered
questions and handbook articles, loaded once however often it runs."""

from __future__ import annotations

from sqlmodel import Session, func, select

from core.db import make_engine
from core.identity.models import Membership, User
from miniapps.interaction.demo import DEMO_QUESTIONS, load_demo
from miniapps.interaction.knowledge import Scope, search
from miniapps.interaction.models import Question
from plugins.context import HostContext


async def _no_events(event) -> None:
    """Demo seeding publishes nothing."""


def test_demo_is_loaded_once_with_its_officials(settings, monkeypatch) -> None:
    from argon2 import PasswordHasher

    from core.identity import passwords

    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    engine = make_engine(settings.sqlalchemy_url)
    host = HostContext(engine=engine, settings=settings, publish_event=_no_events)
    first = list(load_demo(host))
    second = list(load_demo(host))
    assert "4 added" in first[0] and "0 added" in second[0] and second[1].startswith("0 answered questions")
    with Session(engine) as db:
        assert db.exec(select(func.count()).select_from(Question)).one() == len(DEMO_QUESTIONS)
        roles = {(u.username, m.role, m.unit_id) for u, m in db.exec(
            select(User, Membership).where(Membership.user_id == User.id, User.username.in_(["phuvang.demo", "nnmt.demo"])))}
        assert roles == {("phuvang.demo", "commune_official", "phu-vang"), ("nnmt.demo", "department_official", "so-nnmt")}
        hits = search(db, "cap giay chung nhan quyen su dung dat", scope=Scope(units=frozenset({"kim-long"})))
        assert hits and hits[0].entry.title.startswith("Cấp giấy chứng nhận quyền sử dụng đất")
    engine.dispose()
