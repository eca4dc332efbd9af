"""Fixtures for the tasks mini-app: the identity personas, a task of the Department of Justice for Phú
Xuân and Kim Long, and helpers that act through the service as a given official."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from core.identity.principal import Membership, Principal
from miniapps.tasks import service

TASKS = "/api/miniapps/tasks"


def official(role: str, unit: str, user_id: int | None = None) -> Principal:
    """A principal holding one role in one unit (for calling the service directly)."""
    return Principal(user_id=user_id, kind="official", memberships=(Membership(role, unit),))


def allow_all(permission: str, unit_id: str | None) -> bool:
    """The service's permission callback when a test acts as a trusted body."""
    return True


def make_task(engine: Any, *, assigner: str = "so-tu-phap", units: tuple[str, ...] = ("phu-xuan", "kim-long"),
              deadline: datetime | None = None, now: datetime | None = None, title: str = "Rà soát hồ sơ hộ tịch",
              **extra: Any) -> int:
    """A task created through the service; returns its id."""
    now = now or datetime.now(UTC)
    with Session(engine, expire_on_commit=False) as db:
        task = service.create_task(
            db, principal=official("department_official", assigner), allows=allow_all, title=title,
            description=extra.pop("description", "Kiểm tra sổ hộ tịch"), deadline=deadline or now + timedelta(days=10),
            unit_ids=list(units), all_units=False, assigner_unit_id=assigner, now=now, **extra)
        return task.id or 0


def assignment_id(engine: Any, task_id: int, unit: str) -> int:
    """The id of one unit's assignment of a task."""
    from sqlmodel import select

    from miniapps.tasks.models import Assignment

    with Session(engine) as db:
        return db.exec(select(Assignment.id).where(Assignment.task_id == task_id, Assignment.unit_id == unit)).one()


def make_report(engine: Any, assignment: int, unit: str, *, percent: int = 40, complete: bool = False,
                now: datetime | None = None, values: list | None = None) -> int:
    """A pending report by the unit, through the service; returns its id."""
    with Session(engine, expire_on_commit=False) as db:
        report = service.submit_report(db, principal=official("commune_official", unit), allows=allow_all,
                                       assignment_id=assignment, now=now,
                                       spec=service.ReportSpec(percent=percent, complete=complete, values=values or []))
        return report.id or 0


@pytest.fixture
def engine(api: TestClient) -> Any:  # noqa: F811 - the api fixture, by name
    """The host's engine."""
    return api.app.state.engine


@pytest.fixture
def task_for_two(engine: Any) -> int:
    """A Department of Justice task for Phú Xuân and Kim Long, due in ten days."""
    return make_task(engine)


def small_jpeg(colour: tuple[int, int, int] = (122, 31, 43)) -> bytes:
    """A small JPEG photo, as a phone would send evidence."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, "JPEG")
    return out.getvalue()
