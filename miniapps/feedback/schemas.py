"""Request bodies of the feedback API."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RatingCreate(BaseModel):
    """A resident's rating of a resolved report."""

    stars: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=1000)


class ApiKeyCreate(BaseModel):
    """An Open311 key to issue, named after who gets it."""

    name: str = Field(min_length=1, max_length=120)
