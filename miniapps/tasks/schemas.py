"""Request bodies of the tasks API. Numbers are strict: a value of the wrong type is a 422 naming it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StringConstraints,
)

from miniapps.tasks.models import Direction, IndicatorSource, Recurrence

# A finite number: strict floats take whole numbers too, but neither strings, booleans, NaN nor infinity
# (JSON bodies may spell NaN and Infinity, and integers too big for a float would overflow later).
Number = Annotated[float, Strict(), AllowInfNan(False)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)]
Evidence = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500,
                                            pattern=r"^(https://|/)\S+$")]


class IndicatorCreate(BaseModel):
    """An indicator: a number with its unit of measure, baseline, target and direction."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    unit_of_measure: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
    baseline: Number
    target: Number
    direction: Direction = Direction.at_least
    source: IndicatorSource = Field(IndicatorSource.report, description=(
        "report: the unit reports the value; online_rate / on_time_rate: taken from the procedure statistics"))


class TaskCreate(BaseModel):
    """A new task for one unit, several, or all 40 communes and wards."""

    model_config = ConfigDict(extra="forbid")
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    description: Text = ""
    deadline: date | datetime = Field(description="A date (end of that day, Hue time) or a date-time.")
    starts_at: datetime | None = None
    assigner_unit_id: str | None = Field(None, description="'hue' or a department; defaults to the caller's.")
    unit_ids: list[str] = Field(default_factory=list, max_length=40)
    all_units: StrictBool = False
    recurrence: Recurrence = Recurrence.once
    indicators: list[IndicatorCreate] = Field(default_factory=list, max_length=20)


class IndicatorValueIn(BaseModel):
    """A reported indicator value."""

    model_config = ConfigDict(extra="forbid")
    indicator_id: StrictInt
    value: Number


class ReportCreate(BaseModel):
    """A progress report: percent, note, indicator values, evidence links; ``complete`` hands in the result."""

    model_config = ConfigDict(extra="forbid")
    percent: Annotated[StrictInt, Field(ge=0, le=100)]
    note: Text = ""
    complete: StrictBool = False
    period: Annotated[str, StringConstraints(strip_whitespace=True, max_length=7)] = ""
    values: list[IndicatorValueIn] = Field(default_factory=list, max_length=20)
    evidence: list[Evidence] = Field(default_factory=list, max_length=10)


class ReportReturn(BaseModel):
    """Returning a report as not completed needs a reason."""

    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] = ""


class RecordsImport(BaseModel):
    """Procedure records sent through the API; bad rows are reported one by one, not refused as a body."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["keep_good", "reject_file"] = "keep_good"
    records: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)
