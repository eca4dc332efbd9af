"""The interaction mini-app's tables: fields and their departments, questions, replies, attachments,
transfers, handbook articles, and the search entries the full-text index points at."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Enum, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


class QuestionStatus(StrEnum):
    """Where a question stands: waiting for a first answer, answered, settled by the asker, or a duplicate."""

    new = "new"
    answered = "answered"
    settled = "settled"
    duplicate = "duplicate"


class ReplyKind(StrEnum):
    """A department's answer, or a follow-up comment from either side."""

    answer = "answer"
    comment = "comment"


class SearchKind(StrEnum):
    """What a search entry stands for."""

    question = "question"
    article = "article"


class InteractionField(SQLModel, table=True):
    """A field of administration (land, civil status...) and the department that answers for it."""

    __tablename__ = "interaction_field"
    key: str = Field(primary_key=True, max_length=60)
    name_vi: str = Field(max_length=120)
    name_en: str = Field(max_length=120)
    department_id: str = Field(max_length=64, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class Question(SQLModel, table=True):
    """A question a commune or ward official asks a city department."""

    __tablename__ = "interaction_question"
    __table_args__ = (
        Index("ix_interaction_question_department_status", "department_id", "status"),
        Index("ix_interaction_question_unit", "asker_unit_id", "created_at"),
        # The escalation job asks for new questions past their deadline every 15 minutes; without it,
        # SQLite scanned a million questions (7.4 s) each time.
        Index("ix_interaction_question_status_due", "status", "due_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    body: str = Field(max_length=5000)
    field_key: str = Field(max_length=60)
    department_id: str = Field(foreign_key="org_unit.id", max_length=64)
    asker_user_id: int | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    asker_unit_id: str = Field(foreign_key="org_unit.id", max_length=64)
    # Enum types are named after the table: PostgreSQL keeps type names in one namespace for every mini-app.
    status: QuestionStatus = Field(default=QuestionStatus.new, sa_type=Enum(QuestionStatus, name="interaction_question_status"))
    internal: bool = False
    assignee_user_id: int | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    accepted_reply_id: int | None = None
    duplicate_of_id: int | None = Field(default=None, foreign_key="interaction_question.id")
    created_at: datetime = Field(default_factory=utcnow)
    due_at: datetime
    first_answered_at: datetime | None = None
    escalated_at: datetime | None = Field(default=None, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class Reply(SQLModel, table=True):
    """An answer or a comment in a question's thread."""

    __tablename__ = "interaction_reply"
    id: int | None = Field(default=None, primary_key=True)
    question_id: int = Field(foreign_key="interaction_question.id", index=True, ondelete="CASCADE")
    kind: ReplyKind = Field(sa_type=Enum(ReplyKind, name="interaction_reply_kind"))
    body: str = Field(max_length=10000)
    author_user_id: int | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    author_name: str = Field(max_length=120)
    author_unit_id: str = Field(foreign_key="org_unit.id", max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class Attachment(SQLModel, table=True):
    """A file attached to a question: its bytes live in the host's media store under ``storage_key``."""

    __tablename__ = "interaction_attachment"
    id: int | None = Field(default=None, primary_key=True)
    question_id: int = Field(foreign_key="interaction_question.id", index=True, ondelete="CASCADE")
    filename: str = Field(max_length=200)
    content_type: str = Field(max_length=120)
    size: int
    sha256: str = Field(max_length=64)
    storage_key: str = Field(max_length=200, unique=True)
    uploaded_by: int | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)


class Transfer(SQLModel, table=True):
    """A question moved from one department to another, by that department or by an operator."""

    __tablename__ = "interaction_transfer"
    id: int | None = Field(default=None, primary_key=True)
    question_id: int = Field(foreign_key="interaction_question.id", index=True, ondelete="CASCADE")
    from_department_id: str = Field(foreign_key="org_unit.id", max_length=64)
    to_department_id: str = Field(foreign_key="org_unit.id", max_length=64)
    note: str = Field(max_length=1000)
    by_user_id: int | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)


class Article(SQLModel, table=True):
    """A handbook article a department publishes: a procedure, a template, guidance."""

    __tablename__ = "interaction_article"
    id: int | None = Field(default=None, primary_key=True)
    department_id: str = Field(foreign_key="org_unit.id", max_length=64, index=True)
    field_key: str = Field(max_length=60)
    title: str = Field(max_length=200)
    body: str = Field(max_length=20000)
    author_user_id: int | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    published_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class SearchEntry(SQLModel, table=True):
    """One searchable thing (a question or an article) with what search filters on; the full-text
    index ``interaction_fts`` holds its folded text under the same id."""

    __tablename__ = "interaction_search_entry"
    __table_args__ = (
        UniqueConstraint("kind", "ref_id", name="uq_interaction_search_entry_ref"),
        # Browsing without words reads the newest entries: walked in this order, not sorted from the base.
        Index("ix_interaction_search_entry_updated", "updated_at", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    kind: SearchKind = Field(sa_type=Enum(SearchKind, name="interaction_search_kind"))
    ref_id: int
    title: str = Field(max_length=200)
    snippet: str = Field(default="", max_length=400)
    field_key: str = Field(max_length=60, index=True)
    department_id: str = Field(max_length=64, index=True)
    asker_unit_id: str | None = Field(default=None, max_length=64)
    # Readable by every commune and ward: an answered question that is not internal, or an article.
    public: bool = False
    answered: bool = False
    updated_at: datetime = Field(default_factory=utcnow)


class SearchVersion(SQLModel, table=True):
    """One row (id 1) whose random token changes in every transaction that writes to the knowledge base:
    searches kept in memory are keyed by it, so no worker serves a result the base has moved past."""

    __tablename__ = "interaction_search_version"
    id: int = Field(primary_key=True)
    version: int = Field(sa_type=BigInteger)
