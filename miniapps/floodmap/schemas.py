"""Request and response bodies of the flood map's JSON API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from plugins.manifest import LocalizedText


class Reading(BaseModel):
    """One reading as a sensor sends it (SensorThings names ``phenomenonTime``/``result`` work too)."""

    time: str = Field(description="ISO 8601 with a zone, e.g. 2026-11-25T21:00:00+07:00.")
    value: float
    unit: str | None = Field(default=None, description="If given, must be the datastream's unit symbol.")
    datastream: int | None = Field(default=None, description="Needed when the sensor feeds several datastreams.")


class ReadingBatch(BaseModel):
    """A batch of readings; a single reading object or a bare list are accepted as well."""

    readings: list[Reading] = Field(max_length=1000)


class ReadingOutcome(BaseModel):
    """What happened to one reading."""

    index: int
    status: str = Field(description="accepted, duplicate or rejected")
    datastream: int | None = None
    phenomenonTime: str | None = None
    reason: str | None = None
    field: str | None = Field(default=None, description="The input at fault, e.g. readings[3].value.")


class IngestReport(BaseModel):
    """The answer to every well-formed batch (HTTP 200): counts and one outcome per reading, in order."""

    accepted: int
    duplicates: int
    rejected: int
    results: list[ReadingOutcome]
    stations: list[dict[str, Any]] = Field(description="Stations whose state this batch moved.")


class ManualWarning(BaseModel):
    """An operator's warning to the residents of chosen units."""

    unit_ids: list[str] = Field(min_length=1, max_length=50)
    level: int = Field(ge=1, le=3, description="1: warning; 2 and 3: critical (FCM topic message per unit).")
    title: LocalizedText
    body: LocalizedText
    station_id: int | None = None
