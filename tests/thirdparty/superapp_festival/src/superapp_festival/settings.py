"""What an admin may change in the festival mini-app without a release."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, SecretStr


class Ordering(StrEnum):
    """How the programme is ordered."""

    soonest = "soonest"
    venue = "venue"


class FestivalSettings(BaseModel):
    """Edited on /admin/miniapps/festival/settings; the ticket key is stored encrypted."""

    max_events: int = Field(50, ge=1, le=500, title="Events shown", description="How many events the API lists.")
    ordering: Ordering = Field(Ordering.soonest, title="Order of the programme")
    show_venue: bool = Field(True, title="Show the venue")
    ticket_office_url: str = Field("", max_length=200, title="Ticket office address")
    tickets_api_key: SecretStr = Field(SecretStr(""), title="Ticketing API key")
