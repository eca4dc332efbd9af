"""Request and response bodies of the interaction API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from miniapps.interaction.models import QuestionStatus, ReplyKind, SearchKind


class FieldPublic(BaseModel):
    """A field of administration and the department that answers for it."""

    key: str
    name_vi: str
    name_en: str
    department_id: str


class FieldUpdate(BaseModel):
    """An admin's change to the routing table."""

    name_vi: str = Field(min_length=1, max_length=120)
    name_en: str = Field(min_length=1, max_length=120)
    department_id: str = Field(min_length=1, max_length=64)


class QuestionCreate(BaseModel):
    """A new question. Lengths are checked by the service, so its message names the field."""

    title: str = Field(description="5 to 200 characters.")
    body: str = Field(description="1 to 5000 characters.")
    field: str = Field(description="A field key from GET /fields, e.g. 'land'.")
    unit_id: str | None = Field(None, description="The asking commune or ward; needed only when you hold several.")


class ReplyCreate(BaseModel):
    """An answer or a comment."""

    body: str = Field(description="1 to 10000 characters.")


class AcceptBody(BaseModel):
    """The answer that settled the question."""

    reply_id: int


class TransferBody(BaseModel):
    """Where the question goes, and why."""

    department_id: str
    note: str = Field(description="Why it moves; 1 to 1000 characters.")


class DuplicateBody(BaseModel):
    """The earlier, answered question this one repeats."""

    canonical_id: int


class VisibilityBody(BaseModel):
    """Internal questions stay between the asking unit and the department."""

    internal: bool


class ArticleCreate(BaseModel):
    """A handbook article."""

    title: str
    body: str
    field: str
    department_id: str | None = Field(None, description="Needed only when you publish for several departments.")


class AttachmentPublic(BaseModel):
    """A file attached to a question."""

    id: int
    filename: str
    content_type: str
    size: int
    url: str


class ReplyPublic(BaseModel):
    """One answer or comment in a thread."""

    id: int
    kind: ReplyKind
    body: str
    author_name: str
    author_unit_id: str
    created_at: datetime
    accepted: bool = False


class TransferPublic(BaseModel):
    """A move from one department to another."""

    from_department_id: str
    to_department_id: str
    note: str
    created_at: datetime


class QuestionSummary(BaseModel):
    """A question in a list."""

    id: int
    title: str
    field: str
    department_id: str
    asker_unit_id: str
    status: QuestionStatus
    internal: bool
    created_at: datetime
    due_at: datetime
    first_answered_at: datetime | None
    overdue: bool
    url: str


class QuestionPublic(QuestionSummary):
    """A question with its thread; the accepted answer comes first in ``answers``."""

    body: str
    accepted_reply_id: int | None
    duplicate_of_id: int | None
    answers: list[ReplyPublic]
    thread: list[ReplyPublic]
    attachments: list[AttachmentPublic]
    transfers: list[TransferPublic]


class ArticlePublic(BaseModel):
    """A handbook article."""

    id: int
    department_id: str
    field: str
    title: str
    body: str
    published_at: datetime
    url: str


class SearchHit(BaseModel):
    """A question or article that matches, best first; ``snippet`` is the accepted answer when there is one."""

    kind: SearchKind
    id: int
    title: str
    snippet: str
    field: str
    department_id: str
    answered: bool
    score: float
    url: str


class SearchPage(BaseModel):
    """One page of search results."""

    query: str
    folded: str
    results: list[SearchHit]


class DepartmentFiguresPublic(BaseModel):
    """Response-time figures of one department."""

    department_id: str
    name_vi: str
    name_en: str
    asked: int
    answered: int
    answered_on_time: int
    on_time_rate: float | None
    open_overdue: int
    median_hours: float | None
    average_hours: float | None
