"""The tasks JSON API, under /api/miniapps/tasks."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic_core import to_json
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from miniapps.tasks import cache, evaluation, exports, procedures, service
from miniapps.tasks.models import ProcedureImport
from miniapps.tasks.schemas import RecordsImport, ReportCreate, ReportReturn, TaskCreate
from miniapps.tasks.service import (
    IndicatorSpec,
    IndicatorValue,
    ReportSpec,
    Status,
    end_of_day,
    reach_of,
)
from plugins import (
    DomainError,
    OrgUnit,
    PhotoRejected,
    Principal,
    SessionDep,
    allow_body,
    allow_uploads,
    host_of,
    page_locale,
    process_photo,
    require_permission,
)

# Export column titles follow the reader's language (``lang``, the language cookie, Accept-Language);
# ``headers=keys`` gives the stable machine names that scripts read.
HeaderChoice = Annotated[Literal["titles", "keys"], Query(description="titles: column titles in the reader's "
                                                                      "language; keys: machine-readable names")]

# The exports answer CSV or XLSX (``format``), documented as such in the OpenAPI
EXPORT_TYPES: dict[int | str, dict] = {200: {"content": {exports.MEDIA["csv"]: {"schema": {"type": "string"}}, exports.MEDIA["xlsx"]: {
    "schema": {"type": "string", "format": "binary"}}}}}
api = APIRouter()
EVIDENCE_MAX_BYTES = 10 * 2**20
# Procedure files are read row by row (spooled to disk, never whole in memory): a city's year fits.
PROCEDURE_FILE_MAX_BYTES = 256 * 2**20
# RecordsImport takes up to 10,000 records of a few hundred bytes each.
PROCEDURE_RECORDS_MAX_BYTES = 8 * 2**20
MAX_PAGE = 200  # lists are paged: a city's two years of tasks are thousands of rows
Viewer = Annotated[Principal, require_permission("tasks.view")]
Assigner = Annotated[Principal, require_permission("tasks.assign")]
Reporter = Annotated[Principal, require_permission("tasks.report")]
Reviewer = Annotated[Principal, require_permission("tasks.review")]
Closer = Annotated[Principal, require_permission("tasks.periods.close")]
Importer = Annotated[Principal, require_permission("tasks.procedures.import")]


def allows_for(request: Request, principal: Principal) -> Any:
    """``allows(permission, unit)`` for the caller, for the service's object-level checks."""
    return lambda permission, unit_id: host_of(request).authorizer.allows(principal, permission, unit_id)


@api.get("/tasks", operation_id="list_tasks")
def list_tasks(request: Request, response: Response, session: SessionDep, principal: Viewer, q: str | None = None,
               unit_id: str | None = None, status: Status | None = None,
               limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = service.TASK_PAGE,
               cursor: Annotated[str | None, Query(max_length=100)] = None) -> list[dict[str, Any]]:
    """Tasks the caller may see, by text, unit and status, with counts of their units by status; newest
    deadline first, ``limit`` at a time (the next page's URL is in the ``Link: <...>; rel="next"`` header)."""
    page = service.visible_tasks(session, reach_of(principal), text=q, unit_id=unit_id, status=status,
                                 limit=limit, cursor=cursor)
    if page.next_cursor is not None:
        response.headers["Link"] = f'<{request.url.include_query_params(cursor=page.next_cursor)}>; rel="next"'
    return [service.task_json(entry["task"]) | {"units": entry["units"],
                                                 "by_status": {k.value: v for k, v in entry["counts"].items()}}
            for entry in page.entries]


@api.post("/tasks", operation_id="create_task", status_code=201)
def create_task(body: TaskCreate, request: Request, session: SessionDep, principal: Assigner) -> dict[str, Any]:
    """Assign a task to one unit, several, or all 40 communes and wards (one transaction)."""
    deadline = body.deadline if isinstance(body.deadline, datetime) else end_of_day(body.deadline)
    if deadline.tzinfo is None:
        deadline = deadline.replace(tzinfo=service.HUE_TIME)
    starts_at = body.starts_at.replace(tzinfo=body.starts_at.tzinfo or service.HUE_TIME) if body.starts_at else None
    task = service.create_task(
        session, principal=principal, allows=allows_for(request, principal), title=body.title,
        description=body.description, deadline=deadline, unit_ids=body.unit_ids, all_units=body.all_units,
        assigner_unit_id=body.assigner_unit_id, recurrence=body.recurrence, starts_at=starts_at,
        indicators=[IndicatorSpec(i.name, i.unit_of_measure, float(i.baseline), float(i.target),
                                  i.direction.value, i.source.value) for i in body.indicators])
    units = service.visible_assignments(session, reach_of(principal), task_id=task.id)
    return service.task_json(task, service.indicators_of(session, task.id or 0)) | {"units": len(units)}


@api.get("/tasks/{task_id}", operation_id="get_task")
def get_task(task_id: int, session: SessionDep, principal: Viewer) -> dict[str, Any]:
    """A task with the assignments the caller may see and each one's status."""
    reach = reach_of(principal)
    task = service.get_task(session, reach, task_id)
    names = service.unit_names(session)
    return service.task_json(task, service.indicators_of(session, task_id)) | {
        "assignments": [v.as_json(names) for v in service.visible_assignments(session, reach, task_id=task_id)]}


@api.get("/assignments/{assignment_id}", operation_id="get_assignment")
def get_assignment(assignment_id: int, request: Request, session: SessionDep, principal: Viewer) -> dict[str, Any]:
    """One unit's assignment: status, progress and the full report history."""
    assignment, task = service.get_assignment(session, reach_of(principal), assignment_id)
    allows = allows_for(request, principal)
    names = service.unit_names(session)
    return service.view(task, assignment, datetime.now(UTC)).as_json(names) | {
        "task": service.task_json(task, service.indicators_of(session, task.id or 0)),
        "reports": [service.report_json(r) for r in service.reports_of(session, assignment_id)],
        "may_report": allows("tasks.report", assignment.unit_id) and (
            "admin" in principal.roles or assignment.unit_id in principal.units_with_role("commune_official")),
        "may_review": allows("tasks.review", task.assigner_unit_id),
    }


@api.post("/assignments/{assignment_id}/reports", operation_id="submit_report", status_code=201)
def submit_report(assignment_id: int, body: ReportCreate, request: Request, session: SessionDep,
                  principal: Reporter) -> dict[str, Any]:
    """The assigned unit reports progress: percent, indicator values, note, evidence links."""
    spec = ReportSpec(percent=body.percent, note=body.note, complete=body.complete, period=body.period,
                      values=[IndicatorValue(v.indicator_id, float(v.value)) for v in body.values],
                      evidence=list(body.evidence))
    report = service.submit_report(session, principal=principal, allows=allows_for(request, principal),
                                   assignment_id=assignment_id, spec=spec)
    return service.report_json(report)


@api.post("/reports/{report_id}/accept", operation_id="accept_report")
def accept_report(report_id: int, request: Request, session: SessionDep, principal: Reviewer) -> dict[str, Any]:
    """The assigning body accepts a report (a report marked complete completes the assignment)."""
    report = service.review_report(session, principal=principal, allows=allows_for(request, principal),
                                   report_id=report_id, accept=True)
    return service.report_json(report)


@api.post("/reports/{report_id}/return", operation_id="return_report")
def return_report(report_id: int, body: ReportReturn, request: Request, session: SessionDep,
                  principal: Reviewer) -> dict[str, Any]:
    """The assigning body returns a report as not completed, saying why."""
    report = service.review_report(session, principal=principal, allows=allows_for(request, principal),
                                   report_id=report_id, accept=False, reason=body.reason)
    return service.report_json(report)


@api.post("/reports/{report_id}/evidence", operation_id="add_evidence_photo", status_code=201,
          dependencies=[allow_uploads(files=1, each=EVIDENCE_MAX_BYTES)])
async def add_evidence_photo(report_id: int, request: Request, principal: Reporter,
                             photo: Annotated[UploadFile, File()]) -> dict[str, Any]:
    """Attach a photo to a pending report of the caller's unit (checked and stripped by the media service)."""
    engine = host_of(request).engine
    allows = allows_for(request, principal)

    def check() -> None:
        with Session(engine) as db:
            service.report_for_evidence(db, principal=principal, allows=allows, report_id=report_id)

    try:
        await run_in_threadpool(check)
        data = await photo.read(EVIDENCE_MAX_BYTES + 1)
        processed = await run_in_threadpool(process_photo, data, max_bytes=EVIDENCE_MAX_BYTES)
    except PhotoRejected as exc:
        raise DomainError(exc.status, exc.detail, field="photo") from None
    key = f"tasks/evidence/{report_id}/{processed.sha256[:24]}.jpg"

    def store() -> dict[str, Any]:
        host_of(request).media.put(key, processed.display, "image/jpeg")
        with Session(engine, expire_on_commit=False) as db:
            report = service.report_for_evidence(db, principal=principal, allows=allows, report_id=report_id)
            service.add_evidence(db, report, key)
            return service.report_json(report)

    return await run_in_threadpool(store)


@api.get("/reports/{report_id}/evidence/{index}", operation_id="get_evidence_photo",
         response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
def get_evidence_photo(report_id: int, index: int, session: SessionDep, request: Request,
                       principal: Viewer) -> Response:
    """An evidence photo, to whoever may see the report."""
    key = service.evidence_photo(session, reach_of(principal), report_id, index)
    try:
        data = host_of(request).media.get(key)
    except KeyError:
        raise DomainError(404, "the photo is no longer stored", field="path.index") from None
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@api.get("/overdue", operation_id="list_overdue")
def list_overdue(session: SessionDep, principal: Viewer, unit_id: str | None = None,
                 limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = MAX_PAGE) -> list[dict[str, Any]]:
    """Overdue assignments the caller may see, most overdue first (the ``limit`` most overdue)."""
    names = service.unit_names(session)
    found = service.visible_assignments(session, reach_of(principal), unit_id=unit_id, status=Status.overdue,
                                        limit=limit, most_overdue_first=True)
    return [v.as_json(names) for v in found]


def _period(period: str | None) -> str:
    if period is None:
        return service.month_of(datetime.now(UTC))
    return service.check_month(period, field="query.period")


def ranking_json(host: Any, month: str) -> dict[str, Any]:
    """A month's ranking as ``GET /rankings`` serves it, each row with the unit's names."""
    with Session(host.engine) as session:
        names = service.unit_names(session)
        ranking = evaluation.rankings(session, [month], kept=cache.rankings_cache(host))[month]
    # new row dicts: the rankings are shared through the cache and must stay as computed
    return ranking | {"rows": [row | {"unit_name": names.get(row["unit_id"], {})} for row in ranking["rows"]]}


@api.get("/rankings", operation_id="get_ranking", response_model=dict[str, Any])
async def get_ranking(request: Request, principal: Viewer, period: str | None = None) -> Response:
    """The ranking of the 40 communes and wards for a month (stored once the month is closed)."""
    month = _period(period)
    host = host_of(request)
    kept = cache.rankings_cache(host)
    key = ("ranking-json", month)
    # The serialised body is kept with the rankings (same versions, same TTL), so a repeat view costs no
    # thread-pool hop, no query and no serialisation; only a miss goes to the thread pool.
    body = kept.peek(key)
    if body is cache.MISSING:
        body = await run_in_threadpool(kept.cached, key, lambda: to_json(ranking_json(host, month)))
    return Response(body, media_type="application/json")


@api.get("/rankings/export", operation_id="export_ranking", responses=EXPORT_TYPES)
def export_ranking(request: Request, session: SessionDep, principal: Viewer, period: str | None = None,
                   format: Literal["csv", "xlsx"] = "csv", headers: HeaderChoice = "titles") -> Response:
    """The month's ranking as CSV or XLSX."""
    month = _period(period)
    ranking = evaluation.rankings(session, [month], kept=cache.rankings_cache(host_of(request)))[month]
    lang = page_locale(request)
    rows = exports.ranking_rows(ranking["rows"], service.unit_names(session), lang)
    header = exports.header_row(exports.RANKING_HEADER, "keys" if headers == "keys" else lang)
    return exports.table_response(header, rows, fmt=format, name=f"tasks-ranking-{month}")


@api.post("/periods/{period}/close", operation_id="close_period", status_code=201)
def close_period(period: str, session: SessionDep, principal: Closer) -> dict[str, Any]:
    """Close a finished month: its ranking is stored and never recomputed."""
    month = service.check_month(period, field="path.period")
    snapshot = evaluation.close_period(session, period=month, closed_by=principal.user_id)
    return {"period": snapshot.period, "closed": True, "rows": snapshot.rows}


@api.get("/units/{unit_id}/evaluation", operation_id="unit_evaluation")
def unit_evaluation(unit_id: str, request: Request, session: SessionDep, principal: Viewer) -> dict[str, Any]:
    """A commune or ward's score and rank over the last 12 months."""
    unit = session.get(OrgUnit, unit_id)
    if unit is None or unit.kind not in service.ASSIGNEE_KINDS:
        raise DomainError(404, f"no commune or ward {unit_id!r}", field="path.unit_id")
    months = evaluation.recent_months(datetime.now(UTC))
    ranked = evaluation.rankings(session, months, kept=cache.rankings_cache(host_of(request)))
    return {"unit_id": unit_id, "periods": [
        next((r for r in ranked[m]["rows"] if r["unit_id"] == unit_id), {"period": m}) | {"closed": ranked[m]["closed"]}
        for m in months]}


def stats_window(session: Session, first: date | None, last: date | None) -> tuple[date, date] | None:
    """The days asked for, defaulting to the span of the imported records."""
    span = procedures.data_range(session)
    if first is None and last is None and span is None:
        return None
    first = first or (span[0] if span else last)
    last = last or (span[1] if span else first)
    assert first is not None and last is not None
    if last < first:
        raise DomainError(422, "'to' is before 'from'", field="query.to")
    return first, last


@api.get("/procedures/stats", operation_id="procedure_stats")
def procedure_stats(session: SessionDep, principal: Viewer,
                    first: Annotated[date | None, Query(alias="from")] = None,
                    last: Annotated[date | None, Query(alias="to")] = None) -> dict[str, Any]:
    """Records received, online rate, resolved ahead / on time / late, per unit and for the city."""
    window = stats_window(session, first, last)
    if window is None:
        return {"from": None, "to": None, "city": procedures.UnitStats("hue").as_json(), "units": []}
    per_unit = procedures.unit_stats(session, *window)
    return {"from": window[0].isoformat(), "to": window[1].isoformat(),
            "city": procedures.city_total(per_unit).as_json(),
            "units": [s.as_json() for s in sorted(per_unit.values(), key=lambda s: -s.received)]}


@api.get("/procedures/stats/export", operation_id="export_procedure_stats", responses=EXPORT_TYPES)
def export_procedure_stats(request: Request, session: SessionDep, principal: Viewer,
                           first: Annotated[date | None, Query(alias="from")] = None,
                           last: Annotated[date | None, Query(alias="to")] = None,
                           format: Literal["csv", "xlsx"] = "csv", headers: HeaderChoice = "titles") -> Response:
    """The procedure figures per unit as CSV or XLSX."""
    window = stats_window(session, first, last)
    per_unit = procedures.unit_stats(session, *window) if window else {}
    rows = [s.as_json() for s in sorted(per_unit.values(), key=lambda s: -s.received)]
    if window:
        rows.append(procedures.city_total(per_unit).as_json())
    name = f"procedures-{window[0]}-{window[1]}" if window else "procedures"
    lang = page_locale(request)
    header = exports.header_row(exports.PROCEDURE_HEADER, "keys" if headers == "keys" else lang)
    return exports.table_response(header, exports.procedure_rows(rows, service.unit_names(session), lang),
                                  fmt=format, name=name)


@api.post("/procedures/imports", operation_id="import_procedure_file", status_code=201,
          dependencies=[allow_body(PROCEDURE_FILE_MAX_BYTES)])
def import_procedure_file(session: SessionDep, principal: Importer, file: Annotated[UploadFile, File()],
                          mode: Annotated[Literal["keep_good", "reject_file"], Form()] = "keep_good") -> dict[str, Any]:
    """Import procedure records from a CSV or XLSX file, streamed; bad rows are reported row by row."""
    name = PurePath(file.filename or "").name
    suffix = PurePath(name).suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise DomainError(422, "the file must be .csv or .xlsx", field="file")
    rows = procedures.csv_rows(file.file) if suffix == ".csv" else procedures.xlsx_rows(file.file)
    record = procedures.import_rows(session, rows, source=suffix[1:], mode=mode, filename=name,
                                    created_by=principal.user_id)
    return procedures.import_json(record)


@api.post("/procedures/records", operation_id="import_procedure_records", status_code=201,
          dependencies=[allow_body(PROCEDURE_RECORDS_MAX_BYTES)])
def import_procedure_records(body: RecordsImport, session: SessionDep, principal: Importer) -> dict[str, Any]:
    """Import procedure records sent as JSON (another system's API); bad rows reported row by row."""
    rows = ((n, record) for n, record in enumerate(body.records))
    record = procedures.import_rows(session, rows, source="api", mode=body.mode, created_by=principal.user_id)
    return procedures.import_json(record)


@api.get("/procedures/imports/{import_id}", operation_id="get_procedure_import")
def get_procedure_import(import_id: int, session: SessionDep, principal: Importer) -> dict[str, Any]:
    """An import's report: counts and the bad rows with their reasons."""
    record = session.get(ProcedureImport, import_id)
    if record is None:
        raise DomainError(404, f"no import {import_id}", field="path.import_id")
    return procedures.import_json(record)
