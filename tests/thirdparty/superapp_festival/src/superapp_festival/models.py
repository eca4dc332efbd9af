"""The festival's tables."""

from datetime import datetime

from sqlmodel import Field, SQLModel


class FestivalEvent(SQLModel, table=True):
    """One event of the festival programme."""

    __tablename__ = "festival_event"
    id: int | None = Field(default=None, primary_key=True)
    title_vi: str = Field(max_length=200)
    title_en: str = Field(max_length=200)
    venue: str = Field(max_length=200)
    starts_at: datetime
