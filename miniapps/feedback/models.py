"""Feedback tables: categories, field reports, their photos and timeline, followers, Open311 API keys."""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Enum, Index
from sqlmodel import Field, SQLModel

from plugins import utcnow


class ReportState(StrEnum):
    """Where a field report is in its handling (see docs/feedback.md for the allowed moves)."""

    submitted = "submitted"
    accepted = "accepted"
    rejected = "rejected"
    assigned = "assigned"
    in_progress = "in_progress"
    resolved = "resolved"
    closed = "closed"
    duplicate = "duplicate"
    transferred = "transferred"
    reopened = "reopened"


class FeedbackCategory(SQLModel, table=True):
    """What a report is about; decides the handling department (or the local unit) and the deadline."""

    __tablename__ = "feedback_category"
    id: str = Field(primary_key=True, max_length=40, description="Also the Open311 service_code.")
    name_vi: str = Field(max_length=120)
    name_en: str = Field(max_length=120)
    # None: the commune or ward where the report is handles it (local matters). No foreign key: the
    # migration seeds categories before Hue's units are loaded.
    department_id: str | None = Field(default=None, max_length=64)
    deadline_hours: int = Field(default=72, ge=1, description="Working hours (weekends skipped) to resolve.")
    urgent_deadline_hours: int = Field(default=24, ge=1)
    position: int = 100
    active: bool = True


class FeedbackReport(SQLModel, table=True):
    """A resident's field report: what, where, who handles it, its state and deadline."""

    __tablename__ = "feedback_report"
    __table_args__ = (
        Index("ix_feedback_report_queue", "handling_unit_id", "state", "id"),
        # Covers the queue's filters, so counting a unit's 100,000 reports never reads the rows.
        Index("ix_feedback_report_queue_filters", "handling_unit_id", "state", "category_id", "due_at"),
        Index("ix_feedback_report_category_state", "category_id", "state"),
        Index("ix_feedback_report_unit_newest", "handling_unit_id", "id"),
        Index("ix_feedback_report_place", "lat", "lon"),
        # The search box's "reports with this text" (LIKE '%words%'): PostgreSQL answers a word no report
        # has from this trigram index instead of reading all of them (360,000 reports: 96-146 ms, now
        # under 1 ms); common words still walk the newest reports by id. SQLite keeps the scan.
        Index("ix_feedback_report_search_trgm", "search_text", postgresql_using="gin",
              postgresql_ops={"search_text": "gin_trgm_ops"}).ddl_if(dialect="postgresql"),
    )
    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(max_length=32, unique=True, description="Open311 token handed out at creation.")
    category_id: str = Field(foreign_key="feedback_category.id", max_length=40)
    description: str = Field(max_length=4000)
    address: str | None = Field(default=None, max_length=300)
    lat: float
    lon: float
    unit_id: str = Field(foreign_key="org_unit.id", index=True, max_length=64, description="Where it is.")
    handling_unit_id: str = Field(foreign_key="org_unit.id", max_length=64, description="Who handles it.")
    # Stored as text (not a database enum type): type names are global in PostgreSQL.
    state: ReportState = Field(default=ReportState.submitted, index=True, sa_type=Enum(
        ReportState, name="feedback_report_state", native_enum=False, length=20))
    urgent: bool = False
    reporter_id: int | None = Field(default=None, foreign_key="user_account.id", index=True, ondelete="SET NULL")
    # Open311 clients may send contact details; like the reporter, only operators see them.
    reporter_contact: str | None = Field(default=None, max_length=300)
    media_url: str | None = Field(default=None, max_length=500, description="An Open311 client's photo link.")
    needs_placing: bool = Field(default=False, index=True, description=(
        "Open311: located by an address no commune or ward was matched to; held by the city's operators, "
        "at the city's centre and off the public map, until one places it."))
    source: str = Field(default="app", max_length=20, description="app or open311:<api key id>.")
    assignee_id: int | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    duplicate_of_id: int | None = Field(default=None, foreign_key="feedback_report.id")
    response: str | None = Field(default=None, max_length=4000, description="The handler's answer.")
    reason: str | None = Field(default=None, max_length=1000, description="Why it was rejected or reopened.")
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow, index=True)
    due_at: datetime = Field(index=True)
    processed_at: datetime | None = Field(default=None, description="First resolved, rejected or duplicate.")
    resolved_at: datetime | None = None
    escalated_at: datetime | None = None
    rating: int | None = Field(default=None, ge=1, le=5)
    rating_comment: str | None = Field(default=None, max_length=1000)
    rated_at: datetime | None = None
    # Folded (no diacritics) description, address, category and unit names, for the search box.
    search_text: str = Field(default="", max_length=5000)


def new_photo_id() -> str:
    """An unguessable photo id for URLs (128 random bits, URL-safe)."""
    return secrets.token_urlsafe(16)


class FeedbackPhoto(SQLModel, table=True):
    """A processed photo of a report (sent by the resident) or of its resolution (sent by the handler)."""

    __tablename__ = "feedback_photo"
    id: int | None = Field(default=None, primary_key=True)
    # The id in URLs: random, so a public report's photo cannot be found by counting (issue 15).
    public_id: str = Field(default_factory=new_photo_id, max_length=32, unique=True, index=True)
    report_id: int = Field(foreign_key="feedback_report.id", index=True, ondelete="CASCADE")
    kind: str = Field(default="report", max_length=20, description="report or resolution")
    key: str = Field(max_length=200, description="Media store key of the display copy; thumbnail adds '-thumb'.")
    width: int
    height: int
    sha256: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class FeedbackEvent(SQLModel, table=True):
    """One line of a report's timeline: who did what, when."""

    __tablename__ = "feedback_event"
    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="feedback_report.id", index=True, ondelete="CASCADE")
    at: datetime = Field(default_factory=utcnow)
    actor_id: int | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    actor_role: str = Field(max_length=30, description="resident, official, operator, system or open311")
    action: str = Field(max_length=30)
    from_state: str | None = Field(default=None, max_length=20)
    to_state: str | None = Field(default=None, max_length=20)
    unit_id: str | None = Field(default=None, max_length=64, description="The handling unit after the change.")
    note: str | None = Field(default=None, max_length=4000)


class FeedbackFollower(SQLModel, table=True):
    """A resident following someone else's report instead of filing a duplicate."""

    __tablename__ = "feedback_follower"
    report_id: int = Field(foreign_key="feedback_report.id", primary_key=True, ondelete="CASCADE")
    user_id: int = Field(foreign_key="user_account.id", primary_key=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)


class FeedbackApiKey(SQLModel, table=True):
    """An Open311 api_key issued by an admin; only its SHA-256 is kept."""

    __tablename__ = "feedback_api_key"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120, description="Who the key is for.")
    key_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=12, description="The key's first characters, to recognise it in lists.")
    created_at: datetime = Field(default_factory=utcnow)
    created_by: int | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    revoked_at: datetime | None = None
