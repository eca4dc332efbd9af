"""The one search box: what a search provider receives and returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from plugins.context import HostContext


@dataclass(frozen=True)
class SearchQuery:
    """A search as a provider sees it: the text, its diacritic-free form, the caller and the host."""

    text: str
    folded: str  # lower case, diacritics and đ removed: match against folded text
    locale: str
    principal: Any
    host: HostContext
    limit: int = 10


class SearchResult(BaseModel):
    """One hit; the host adds which mini-app it came from."""

    title: str
    url: str = Field(description="Where the app opens the hit, usually under /m/<id>/.")
    snippet: str = ""
    score: float = Field(1.0, ge=0, description="Relevance in [0, 1], used to merge sources.")
