"""The news and warning feed as a feed contributor sees it: the reader's context and the cards it returns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from plugins.context import HostContext


@dataclass(frozen=True)
class FeedContext:
    """Who reads the feed: the caller (a ``Principal``), the page's language, the host, and how many cards fit."""

    principal: Any
    locale: str
    host: HostContext
    now: datetime
    limit: int = 3


class FeedCard(BaseModel):
    """One card a mini-app adds to the top of the first feed page; the host tags it with the mini-app id.

    Texts are already in ``context.locale``. Cards are not stored and not paginated: a contributor is
    asked again on every first page, so it returns what matters to this reader now.
    """

    model_config = ConfigDict(extra="forbid")

    key: str = Field(max_length=100, description="Stable within the mini-app, so the app can recognise a card.")
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=1000)
    url: str | None = Field(default=None, max_length=500, description="Where the app opens the card, e.g. /m/<id>/.")
    kind: Literal["news", "warning"] = "news"
    severity: Literal["info", "warning", "critical"] = "info"
    at: datetime | None = Field(default=None, description="When the thing on the card happens or happened.")
