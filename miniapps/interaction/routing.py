"""Routing: which department answers for a field, and when a first answer is due."""

from __future__ import annotations

import csv
from datetime import datetime
from importlib import resources

from sqlmodel import Session, select

from miniapps.interaction.models import InteractionField, utcnow
from plugins import DomainError, OrgUnit, UnitKind, add_working_days, slugify

# Working days are counted on Hue's calendar (core.worktime).
FIRST_ANSWER_WORKING_DAYS = 3
# The departments' CSV names fields in English; these are the names officials read in Vietnamese.
FIELD_NAMES_VI = {
    "digital transformation": "Chuyển đổi số", "telecommunications": "Viễn thông", "science": "Khoa học",
    "civil service": "Công chức, viên chức", "organisation": "Tổ chức bộ máy",
    "emulation and rewards": "Thi đua, khen thưởng", "labour": "Lao động", "civil status": "Hộ tịch",
    "notarisation": "Chứng thực", "legal aid": "Trợ giúp pháp lý", "judicial records": "Lý lịch tư pháp",
    "trade": "Thương mại", "industry": "Công nghiệp", "energy": "Năng lượng",
    "consumer protection": "Bảo vệ người tiêu dùng", "construction permits": "Cấp phép xây dựng",
    "urban planning": "Quy hoạch đô thị", "housing": "Nhà ở", "transport": "Giao thông vận tải",
    "culture": "Văn hóa", "heritage": "Di sản", "sports": "Thể thao", "tourism": "Du lịch", "land": "Đất đai",
    "environment": "Môi trường", "agriculture": "Nông nghiệp", "water resources": "Tài nguyên nước",
    "natural disaster prevention": "Phòng, chống thiên tai", "budget": "Ngân sách", "investment": "Đầu tư",
    "business registration": "Đăng ký kinh doanh", "health": "Y tế", "social protection": "Bảo trợ xã hội",
    "schools": "Trường học", "education": "Giáo dục",
}


def default_fields() -> list[dict[str, str]]:
    """The fields of the shipped departments CSV, each with its department: the default routing table."""
    with resources.files("core.units").joinpath("data", "departments.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    table = []
    for row in rows:
        for name in (part.strip() for part in row["fields"].split(";")):
            if name:
                table.append({"key": slugify(name), "name_vi": FIELD_NAMES_VI.get(name, name.capitalize()),
                              "name_en": name.capitalize(), "department_id": row["code"]})
    return table


def ensure_fields(session: Session) -> int:
    """Seed the routing table from the CSV when it is empty (a fresh or emptied database); returns rows added."""
    if session.exec(select(InteractionField.key).limit(1)).first() is not None:
        return 0
    rows = default_fields()
    for row in rows:
        session.add(InteractionField(**row))
    session.commit()
    return len(rows)


def list_fields(session: Session) -> list[InteractionField]:
    """The routing table, by Vietnamese name."""
    ensure_fields(session)
    return list(session.exec(select(InteractionField).order_by(InteractionField.name_vi)))


def department_for(session: Session, field_key: str) -> str:
    """The department that answers for ``field_key``."""
    ensure_fields(session)
    row = session.get(InteractionField, field_key)
    if row is None:
        raise DomainError(422, f"unknown field {field_key!r}; see GET /api/miniapps/interaction/fields", field="field")
    return row.department_id


def check_department(session: Session, department_id: str, *, field: str = "department_id") -> OrgUnit:
    """The department ``department_id``, or a DomainError naming ``field``."""
    unit = session.get(OrgUnit, department_id)
    if unit is None or unit.kind is not UnitKind.department:
        raise DomainError(422, f"{department_id!r} is not a city department", field=field)
    return unit


def set_field(session: Session, *, key: str, name_vi: str, name_en: str, department_id: str) -> InteractionField:
    """Create or change one row of the routing table (admins); questions already asked keep their department."""
    if slugify(key) != key or not key:
        raise DomainError(422, "a field key is lower-case words joined by '-', such as 'civil-status'", field="path.key")
    check_department(session, department_id)
    row = session.get(InteractionField, key) or InteractionField(key=key, name_vi="", name_en="", department_id="")
    row.name_vi, row.name_en, row.department_id, row.updated_at = name_vi.strip(), name_en.strip(), department_id, utcnow()
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def first_answer_due(asked_at: datetime | None = None) -> datetime:
    """When the first answer to a question asked at ``asked_at`` (default now) is due."""
    return add_working_days(asked_at or utcnow(), FIRST_ANSWER_WORKING_DAYS)
