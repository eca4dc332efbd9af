"""The contract kit passes for feedback, and its demo loader is idempotent."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session, select

from plugins.testing import check_miniapp


def test_feedback_passes_the_contract_kit(tmp_path: Path) -> None:
    check_miniapp("feedback", tmp_path)


def test_demo_data_loads_twice_and_makes_the_scenario_possible(sqlite_url: str) -> None:
    from core.app import discover
    from core.db import make_engine
    from core.identity.models import Membership, User
    from core.seed import seed_demo
    from miniapps.feedback.models import FeedbackApiKey, FeedbackReport
    from tests.conftest import base_settings

    engine = make_engine(sqlite_url)
    miniapps = [m for m in discover(base_settings(database_url=sqlite_url)) if m.id == "feedback"]
    first = list(seed_demo(engine, miniapps))
    second = list(seed_demo(engine, miniapps))
    assert any("reports added" in line for line in first) and any("already loaded" in line for line in second)
    with Session(engine) as db:
        reports = db.exec(select(FeedbackReport)).all()
        assert len(reports) == 5 and {r.state.value for r in reports} >= {"submitted", "in_progress", "resolved"}
        assert len(db.exec(select(FeedbackApiKey)).all()) == 1
        # the phu-xuan demo official handles the local reports; an environment official exists too
        nnmt = db.exec(select(Membership).where(Membership.unit_id == "so-nnmt")).all()
        assert nnmt and db.get(User, nnmt[0].user_id).username == "moitruong.demo"
    engine.dispose()
