"""What an admin may change in the flood map without a release (/admin/miniapps/floodmap/settings)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FloodmapSettings(BaseModel):
    """Limits of the ingest and the life of a warning."""

    ingest_batches_per_minute: int = Field(60, ge=1, le=6000, title="Batches a minute per sensor",
                                           description="More from one sensor are refused with 429 and Retry-After.")
    warning_hours: int = Field(12, ge=1, le=72, title="Warning lifetime (hours)",
                               description="How long a warning stays active on the feed and in its CAP expires.")
