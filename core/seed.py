"""Demo data: Hue's org units, demo officials and residents; every step is idempotent."""

from __future__ import annotations

import os
from collections.abc import Iterator

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.identity.models import User
from core.identity.service import create_official, find_or_create_resident
from core.units.service import load_reference_units
from plugins.context import HostContext
from plugins.registry import MiniApp

# The demo password is public on purpose (it is in the README); production refuses demo seeding.
DEMO_PASSWORD_ENV = "SUPERAPP_DEMO_PASSWORD"
DEMO_PASSWORD = "hue-demo-2025"
DEMO_OFFICIALS = (
    ("admin.demo", "Quản trị viên (demo)", "admin", "hue"),
    ("operator.demo", "Trung tâm Giám sát (demo)", "operator", "hue"),
    ("phuxuan.demo", "Cán bộ phường Phú Xuân (demo)", "commune_official", "phu-xuan"),
    ("kimlong.demo", "Cán bộ phường Kim Long (demo)", "commune_official", "kim-long"),
    ("tuphap.demo", "Chuyên viên Sở Tư pháp (demo)", "department_official", "so-tu-phap"),
    ("xaydung.demo", "Chuyên viên Sở Xây dựng (demo)", "department_official", "so-xay-dung"),
)
DEMO_RESIDENTS = (("+84905000001", "phu-xuan", "Lê Thị Hoa"), ("+84905000002", "kim-long", "Phạm Văn Minh"))


def seed_demo(engine: Engine, miniapps: list[MiniApp], *, env: str = "dev") -> Iterator[str]:
    """Load the demo data, yielding a progress line per step."""
    if env == "production":
        raise RuntimeError("refusing to load demo accounts with a public password in production")
    password = os.environ.get(DEMO_PASSWORD_ENV, DEMO_PASSWORD)
    with Session(engine) as session:
        added = load_reference_units(session)
        yield f"org units: {added} added (city, 10 departments, 40 communes and wards)"
        created = 0
        for username, name, role, unit in DEMO_OFFICIALS:
            if session.exec(select(User).where(User.username == username)).first() is None:
                create_official(session, username=username, display_name=name, password=password,
                                memberships=[(role, unit)])
                created += 1
        yield f"demo officials: {created} added ({', '.join(u for u, *_ in DEMO_OFFICIALS)}; " \
              f"password '{password}')"
        created = 0
        for phone, unit, name in DEMO_RESIDENTS:
            if session.exec(select(User).where(User.phone == phone)).first() is None:
                user = find_or_create_resident(session, firebase_uid=None, phone=phone, address=None)
                user.home_unit_id, user.display_name = unit, name
                session.add(user)
                created += 1
        session.commit()
        yield f"demo residents: {created} added (sign in with the development code for {DEMO_RESIDENTS[0][0]})"
    host = HostContext(engine=engine, settings=None, publish_event=_no_events)
    for miniapp in miniapps:
        for loader in miniapp.demo_loaders:
            try:
                lines = loader(host) or ()
                for line in lines:
                    yield f"{miniapp.id}: {line}"
            except Exception as exc:
                raise RuntimeError(f"mini-app '{miniapp.id}': demo data failed: {type(exc).__name__}: {exc}") from exc


async def _no_events(event: object) -> None:
    """Seeding publishes no domain events: no subscriber should react to demo data."""
