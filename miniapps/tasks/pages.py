"""The tasks pages, under /m/tasks: overview, task, assignment, unit, ranking and procedure dashboards."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from miniapps.tasks import cache, evaluation, procedures, service
from miniapps.tasks.charts import Bar, bar_chart, column_chart, tone_for
from miniapps.tasks.models import ReviewState
from miniapps.tasks.routes import allows_for
from miniapps.tasks.service import (
    HUE_TIME,
    STATUS_NAMES,
    IndicatorValue,
    ReportSpec,
    Status,
    TaskError,
    as_utc,
    reach_of,
)
from plugins import OrgUnit, Principal, PrincipalDep, SessionDep, UnitKind, host_of, page_locale, render_page

pages = APIRouter()
OVERDUE_SHOWN = 50  # the overview lists the most overdue; the count says how many there are in all
UNIT_TASKS_SHOWN = 100  # a unit's page: its latest assignments (two years of them are hundreds)


def _when(moment: datetime | None) -> str:
    return as_utc(moment).astimezone(HUE_TIME).strftime("%d/%m/%Y %H:%M") if moment else ""


def _gate(request: Request, principal: Principal) -> Response | None:
    """Sign-in for anonymous callers, a 403 page for callers without ``tasks.view``, None otherwise."""
    if not principal.is_authenticated:
        return RedirectResponse(f"/auth/login?next={request.url.path}", status_code=303)
    if not host_of(request).authorizer.allows(principal, "tasks.view"):
        return render_page(request, "tasks/message.html", {"kind": "forbidden"}, status_code=403)
    return None


def _not_found(request: Request) -> Response:
    return render_page(request, "tasks/message.html", {"kind": "not_found"}, status_code=404)


def _home_unit(principal: Principal) -> str | None:
    return next(iter(sorted(principal.units_with_role("commune_official"))), None)


def format_number(value: float | int, locale: str, digits: int = 0) -> str:
    """A number as the page's language writes it: 17.710 and 75,78 in Vietnamese, 17,710 and 75.78 in English."""
    text = f"{value:,.{digits}f}"
    return text.translate(str.maketrans(",.", ".,")) if locale == "vi" else text


def _base(request: Request, principal: Principal, session: Session) -> dict[str, Any]:
    locale = page_locale(request)
    return {"names": service.unit_names(session), "status_names": STATUS_NAMES, "when": _when,
            "home_unit": _home_unit(principal),
            "num": lambda value, digits=0: format_number(value, locale, digits)}


@pages.get("/")
def overview(request: Request, principal: PrincipalDep, session: SessionDep, status: Status | None = None,
             cursor: str | None = None) -> Response:
    """The entry page: the caller's tasks by status, a page at a time, and the most overdue (a sign-in prompt
    for others)."""
    if not principal.is_authenticated or not host_of(request).authorizer.allows(principal, "tasks.view"):
        return render_page(request, "tasks/welcome.html", {})
    reach = reach_of(principal)
    try:
        page = service.visible_tasks(session, reach, status=status, cursor=cursor)
    except TaskError:
        return render_page(request, "tasks/message.html", {"kind": "bad_cursor"}, status_code=422)
    overdue = service.visible_assignments(session, reach, status=Status.overdue, limit=OVERDUE_SHOWN,
                                          most_overdue_first=True)
    return render_page(request, "tasks/overview.html", _base(request, principal, session) | {
        "tasks": page.entries, "next_cursor": page.next_cursor, "overdue": overdue,
        "overdue_count": service.count_assignments(session, reach, status=Status.overdue), "status": status,
        "may_assign": host_of(request).authorizer.allows(principal, "tasks.assign")})


# --- Assigning a task, importing records ------------------------------------------------------------------


def _gate_permission(request: Request, principal: Principal, permission: str) -> Response | None:
    """Sign-in for anonymous callers, a 403 page without ``permission``, None otherwise."""
    if not principal.is_authenticated:
        return RedirectResponse(f"/auth/login?next={request.url.path}", status_code=303)
    if not host_of(request).authorizer.allows(principal, permission):
        return render_page(request, "tasks/message.html", {"kind": "forbidden"}, status_code=403)
    return None


def _assigning_bodies(request: Request, principal: Principal, session: Session) -> list[OrgUnit]:
    """The city and departments the caller may assign for."""
    allows = allows_for(request, principal)
    return [u for u in session.exec(select(OrgUnit).where(col(OrgUnit.kind).in_((UnitKind.city, UnitKind.department)))
                                    .order_by(OrgUnit.kind, OrgUnit.name_vi))
            if allows("tasks.assign", u.id)]


def _task_form(request: Request, principal: Principal, session: Session, *, values: dict[str, Any],
               error: str | None = None, status_code: int = 200) -> Response:
    return render_page(request, "tasks/new.html", _base(request, principal, session) | {
        "bodies": _assigning_bodies(request, principal, session), "units": service.assignee_units(session),
        "values": values, "error": error}, status_code=status_code)


@pages.get("/tasks/new")
def new_task_form(request: Request, principal: PrincipalDep, session: SessionDep) -> Response:
    """The form to assign a task (department officials, operators)."""
    refused = _gate_permission(request, principal, "tasks.assign")
    if refused is not None:
        return refused
    return _task_form(request, principal, session, values={"all_units": True, "unit_ids": []})


@pages.post("/tasks/new")
async def new_task_from_form(request: Request, principal: PrincipalDep) -> Response:
    """Create the task and open it, or show the form again with what is wrong."""
    refused = _gate_permission(request, principal, "tasks.assign")
    if refused is not None:
        return refused
    form = await request.form()
    values: dict[str, Any] = {k: str(form.get(k) or "").strip() for k in (
        "title", "description", "deadline", "assigner_unit_id", "recurrence", "indicator_name", "indicator_unit",
        "indicator_baseline", "indicator_target", "indicator_direction")}
    values["all_units"] = form.get("all_units") == "on"
    values["unit_ids"] = [str(u) for u in form.getlist("unit_ids")]

    def store() -> int:
        indicators = []
        if values["indicator_name"]:
            try:
                baseline, target = float(values["indicator_baseline"]), float(values["indicator_target"])
            except ValueError:
                raise TaskError(422, "baseline and target must be numbers", field="indicator_target") from None
            indicators.append(service.IndicatorSpec(values["indicator_name"], values["indicator_unit"] or "%",
                                                    baseline, target, values["indicator_direction"] or ">="))
        try:
            deadline = service.end_of_day(date.fromisoformat(values["deadline"]))
        except ValueError:
            raise TaskError(422, "choose a deadline", field="deadline") from None
        with Session(host_of(request).engine, expire_on_commit=False) as db:
            task = service.create_task(
                db, principal=principal, allows=allows_for(request, principal), title=values["title"],
                description=values["description"], deadline=deadline, unit_ids=values["unit_ids"],
                all_units=values["all_units"], assigner_unit_id=values["assigner_unit_id"] or None,
                recurrence=values["recurrence"] or "once", indicators=indicators)
            return task.id or 0

    try:
        task_id = await run_in_threadpool(store)
    except TaskError as exc:
        refusal = exc

        def form_again() -> Response:  # in the thread pool: the form reads units from the database
            with Session(host_of(request).engine) as db:
                return _task_form(request, principal, db, values=values, error=refusal.detail,
                                  status_code=403 if refusal.status == 403 else 422)

        return await run_in_threadpool(form_again)
    return RedirectResponse(f"/m/tasks/tasks/{task_id}?lang={page_locale(request)}", status_code=303)


@pages.get("/procedures/import")
def import_form(request: Request, principal: PrincipalDep, session: SessionDep) -> Response:
    """The form to import procedure records from a CSV or XLSX file."""
    refused = _gate_permission(request, principal, "tasks.procedures.import")
    if refused is not None:
        return refused
    return render_page(request, "tasks/import.html", _base(request, principal, session) | {"result": None,
                                                                                          "error": None})


@pages.post("/procedures/import")
async def import_from_form(request: Request, principal: PrincipalDep) -> Response:
    """Import the uploaded file with the chosen mode and show the report, bad rows listed one by one."""
    refused = _gate_permission(request, principal, "tasks.procedures.import")
    if refused is not None:
        return refused
    form = await request.form()
    upload = form.get("file")
    mode = str(form.get("mode") or "keep_good")
    name = PurePath(getattr(upload, "filename", "") or "").name
    suffix = PurePath(name).suffix.lower()

    def run() -> dict[str, Any]:
        if suffix not in (".csv", ".xlsx") or upload is None or isinstance(upload, str):
            raise TaskError(422, "choose a .csv or .xlsx file", field="file")
        rows = procedures.csv_rows(upload.file) if suffix == ".csv" else procedures.xlsx_rows(upload.file)
        with Session(host_of(request).engine, expire_on_commit=False) as db:
            return procedures.import_json(procedures.import_rows(db, rows, source=suffix[1:], mode=mode,
                                                                 filename=name, created_by=principal.user_id))

    def read_base() -> dict[str, Any]:  # in the thread pool, never on the event loop
        with Session(host_of(request).engine) as db:
            return _base(request, principal, db)

    base = await run_in_threadpool(read_base)
    try:
        result = await run_in_threadpool(run)
    except TaskError as exc:
        return render_page(request, "tasks/import.html", base | {"result": None, "error": exc.detail}, status_code=422)
    return render_page(request, "tasks/import.html", base | {"result": result, "error": None})


# --- Dashboards -------------------------------------------------------------------------------------------


@pages.get("/tasks/{task_id}")
def task_page(task_id: int, request: Request, principal: PrincipalDep, session: SessionDep) -> Response:
    """A task: its indicators and every visible unit's status, with a chart of the statuses."""
    refused = _gate(request, principal)
    if refused is not None:
        return refused
    reach = reach_of(principal)
    try:
        task = service.get_task(session, reach, task_id)
    except TaskError:
        return _not_found(request)
    views = service.visible_assignments(session, reach, task_id=task_id)
    locale = page_locale(request)
    counts = {s: sum(1 for v in views if v.status is s) for s in Status}
    tones = {Status.completed_on_time: "good", Status.completed_late: "warn", Status.in_progress: "main",
             Status.overdue: "bad"}
    chart = bar_chart([Bar(STATUS_NAMES[s][locale], counts[s], str(counts[s]), tones[s]) for s in Status],
                      title=task.title, maximum=max(1, len(views)), testid="status-chart")
    return render_page(request, "tasks/task.html", _base(request, principal, session) | {
        "task": task, "views": views, "chart": chart, "indicators": service.indicators_of(session, task_id),
        "periods": service.report_periods(task)})


# The report form's refusals in words, by the field the service named (the page never shows field paths).
REPORT_ERRORS: dict[str, dict[str, str]] = {
    "number": {"vi": "Tiến độ và các chỉ số phải là số.", "en": "Progress and the indicators must be numbers."},
    "body.percent": {"vi": "Tiến độ phải từ 0 đến 100%; báo cáo hoàn thành phải là 100%.",
                     "en": "Progress must be from 0 to 100%; a report that completes the task must say 100%."},
    "body.period": {"vi": "Hãy chọn một kỳ báo cáo của nhiệm vụ này.", "en": "Choose a reporting period of this task."},
    "body.note": {"vi": "Ghi chú có ký tự không hợp lệ hoặc quá dài.", "en": "The note has invalid characters or is too long."},
    "path.assignment_id": {"vi": "Nhiệm vụ này đã hoàn thành; không nhận thêm báo cáo.",
                           "en": "This assignment is completed; no more reports are taken."},
    "report": {"vi": "Báo cáo chưa được lưu; hãy kiểm tra lại.", "en": "The report was not saved; check it and try again."},
}


@pages.get("/assignments/{assignment_id}")
def assignment_page(assignment_id: int, request: Request, principal: PrincipalDep, session: SessionDep,
                    error: str | None = None) -> Response:
    """One unit's assignment: status, report history, the report form and the review buttons."""
    refused = _gate(request, principal)
    if refused is not None:
        return refused
    try:
        assignment, task = service.get_assignment(session, reach_of(principal), assignment_id)
    except TaskError:
        return _not_found(request)
    allows = allows_for(request, principal)
    indicators = service.indicators_of(session, task.id or 0)
    reports = service.reports_of(session, assignment_id)
    # Progress counts once the assigning body accepts a report; until then the page says what was reported.
    awaiting = max((r.percent for r in reports if r.state is ReviewState.pending), default=None)
    return render_page(request, "tasks/assignment.html", _base(request, principal, session) | {
        "item": service.view(task, assignment, datetime.now(UTC)), "task": task, "awaiting": awaiting,
        "error_text": REPORT_ERRORS.get(error or "", REPORT_ERRORS["report"]) if error else None,
        "reports": reports, "indicators": indicators,
        "indicator_names": {str(i.id): f"{i.name} ({i.unit_of_measure})" for i in indicators},
        "periods": [k for k, _ in service.report_periods(task)], "error": error, "pending": ReviewState.pending,
        "may_report": allows("tasks.report", assignment.unit_id) and assignment.completed_at is None and (
            "admin" in principal.roles or assignment.unit_id in principal.units_with_role("commune_official")),
        "may_review": allows("tasks.review", task.assigner_unit_id)})


@pages.post("/assignments/{assignment_id}/reports")
async def report_from_form(assignment_id: int, request: Request, principal: PrincipalDep) -> Response:
    """The report form: save the report and show the assignment again (errors shown on it)."""
    refused = _gate(request, principal)
    if refused is not None:
        return refused
    form = await request.form()
    url = f"/m/tasks/assignments/{assignment_id}"
    try:
        percent = int(str(form.get("percent") or ""))
        values = [IndicatorValue(int(str(key).removeprefix("value_")), float(str(raw)))
                  for key, raw in form.items() if str(key).startswith("value_") and str(raw).strip()]
    except ValueError:
        return RedirectResponse(f"{url}?error=number", status_code=303)
    spec = ReportSpec(percent=percent, note=str(form.get("note") or ""), complete=form.get("complete") == "on",
                      period=str(form.get("period") or ""), values=values)

    def store() -> None:
        with Session(host_of(request).engine, expire_on_commit=False) as db:
            service.submit_report(db, principal=principal, allows=allows_for(request, principal),
                                  assignment_id=assignment_id, spec=spec)

    try:
        await run_in_threadpool(store)
    except TaskError as exc:
        if exc.status == 404:
            return _not_found(request)
        if exc.status == 403:
            return render_page(request, "tasks/message.html", {"kind": "refused", "detail": exc.detail}, status_code=403)
        return RedirectResponse(f"{url}?error={exc.field or 'report'}", status_code=303)
    return RedirectResponse(url, status_code=303)


@pages.post("/reports/{report_id}/review")
async def review_from_form(report_id: int, request: Request, principal: PrincipalDep) -> Response:
    """Accept or return a report from the assignment page."""
    refused = _gate(request, principal)
    if refused is not None:
        return refused
    form = await request.form()
    accept = form.get("decision") == "accept"

    def store() -> int:
        with Session(host_of(request).engine, expire_on_commit=False) as db:
            report = service.review_report(db, principal=principal, allows=allows_for(request, principal),
                                           report_id=report_id, accept=accept, reason=str(form.get("reason") or ""))
            return report.assignment_id

    try:
        assignment_id = await run_in_threadpool(store)
    except TaskError as exc:
        if exc.status == 404:
            return _not_found(request)
        return render_page(request, "tasks/message.html", {"kind": "refused", "detail": exc.detail},
                           status_code=exc.status)
    return RedirectResponse(f"/m/tasks/assignments/{assignment_id}", status_code=303)


@pages.get("/units/{unit_id}")
def unit_page(unit_id: str, request: Request, principal: PrincipalDep, session: SessionDep) -> Response:
    """A commune or ward's dashboard: its tasks, overdue items, 12 months of scores, procedure figures."""
    refused = _gate(request, principal)
    if refused is not None:
        return refused
    unit = session.get(OrgUnit, unit_id)
    if unit is None or unit.kind not in service.ASSIGNEE_KINDS:
        return _not_found(request)
    locale = page_locale(request)
    now = datetime.now(UTC)
    months = evaluation.recent_months(now)
    ranked = evaluation.rankings(session, months, kept=cache.rankings_cache(host_of(request)))
    history = [next((r for r in ranked[m]["rows"] if r["unit_id"] == unit_id), {}) | {"period": m} for m in months]
    chart = column_chart([Bar(m["period"][2:], m.get("score"), "" if m.get("score") is None else f"{m['score']:.0f}",
                              tone_for((m.get("score") or 0) / 100)) for m in history],
                         title={"vi": "Điểm theo tháng", "en": "Score by month"}[locale], testid="unit-scores")
    reach = reach_of(principal)
    views = service.visible_assignments(session, reach, unit_id=unit_id, limit=UNIT_TASKS_SHOWN)
    overdue = service.visible_assignments(session, reach, unit_id=unit_id, status=Status.overdue,
                                          limit=OVERDUE_SHOWN, most_overdue_first=True)
    span = procedures.data_range(session)
    stats = procedures.unit_stats(session, *span).get(unit_id) if span else None
    return render_page(request, "tasks/unit.html", _base(request, principal, session) | {
        "unit": unit, "views": views, "overdue": overdue,
        "history": history, "chart": chart, "current": history[-1], "stats": stats, "span": span})


def ranking_body(request: Request, month: str, locale: str) -> Markup:
    """The ranking page's content for a month and language: the table, its chart and 12 months of ranks."""
    months = evaluation.recent_months(service.end_of_day(service.period_bounds(month)[1]))
    with Session(host_of(request).engine) as session:
        ranked = evaluation.rankings(session, months, kept=cache.rankings_cache(host_of(request)))
        names = service.unit_names(session)
    rows = ranked[month]["rows"]
    chart = bar_chart([Bar(names.get(r["unit_id"], {}).get(locale, r["unit_id"]), r["score"],
                           "—" if r["score"] is None else format_number(r["score"], locale, 1),
                           tone_for((r["score"] or 0) / 100))
                       for r in rows], title={"vi": "Điểm đánh giá", "en": "Scores"}[locale], testid="ranking-chart")
    ranks = {m: {r["unit_id"]: r["rank"] for r in ranked[m]["rows"]} for m in months}
    # 40 x 12 cells of small integers: built here, as one string per unit, rather than cell by cell in Jinja
    history = [(names.get(r["unit_id"], {}).get(locale, r["unit_id"]),
                Markup("".join(f"<td>{ranks[m].get(r['unit_id']) or ''}</td>" for m in months))) for r in rows]
    template = request.app.state.templates.get_template("tasks/ranking_body.html")
    return Markup(template.render(locale=locale, period=month, ranking=ranked[month], rows=rows, chart=chart,
                                  months=months, history=history, names=names,
                                  num=lambda value, digits=0: format_number(value, locale, digits)))


@dataclass
class RankingPage:
    """The ranking page for one data version, month and language: its content, and whole pages around it."""

    body: Markup
    # (home unit, may close, base URL) -> the page's bytes; the shell around the content depends on nothing
    # else. Bounded, since the base URL comes from the Host header; a new RankingPage starts empty.
    pages: dict[tuple[str | None, bool, str], bytes] = field(default_factory=dict)


RANKING_PAGE_VARIANTS = 64


@pages.get("/rankings")
async def ranking_page(request: Request, principal: PrincipalDep, period: str | None = None) -> Response:
    """The ranking of the 40 units for a month, a chart of their scores and 12 months of ranks."""
    refused = _gate(request, principal)
    if refused is not None:
        return refused
    now = datetime.now(UTC)
    try:
        month = service.check_month(period, field="query.period") if period else service.month_of(now)
    except TaskError:
        return render_page(request, "tasks/message.html", {"kind": "bad_period"}, status_code=422)
    locale = page_locale(request)
    kept = cache.rankings_cache(host_of(request))
    # The content depends only on the data, the month and the language: rendered once and kept with the
    # rankings (dropped on any write here, at most TTL_SECONDS old), so a repeat view costs no query and no
    # thread-pool hop; a miss renders it in the thread pool, once for all the requests waiting on it.
    key = ("ranking-page", month, locale)
    entry = kept.peek(key)
    if entry is cache.MISSING:
        entry = await run_in_threadpool(kept.cached, key, lambda: RankingPage(ranking_body(request, month, locale)))
    may_close = host_of(request).authorizer.allows(principal, "tasks.periods.close")
    variant = (_home_unit(principal), may_close, str(request.base_url))
    html = entry.pages.get(variant)
    if html is None:
        response = render_page(request, "tasks/rankings.html", {
            "period": month, "body": entry.body, "home_unit": variant[0], "may_close": may_close})
        if len(entry.pages) < RANKING_PAGE_VARIANTS:
            entry.pages[variant] = bytes(response.body)
        return response
    return HTMLResponse(html, headers={"Content-Language": locale})


@pages.get("/procedures")
def procedures_page(request: Request, principal: PrincipalDep, session: SessionDep,
                    first: Annotated[str | None, Query(alias="from")] = None,
                    last: Annotated[str | None, Query(alias="to")] = None) -> Response:
    """Procedure statistics: the city's figures and each unit's, with charts; defaults to all imported days."""
    refused = _gate(request, principal)
    if refused is not None:
        return refused
    span = procedures.data_range(session)
    try:
        window = (date.fromisoformat(first) if first else span[0] if span else None,
                  date.fromisoformat(last) if last else span[1] if span else None)
    except ValueError:
        return render_page(request, "tasks/message.html", {"kind": "bad_period"}, status_code=422)
    per_unit = procedures.unit_stats(session, *window) if window[0] and window[1] else {}
    city = procedures.city_total(per_unit)
    names = service.unit_names(session)
    locale = page_locale(request)
    units = sorted(per_unit.values(), key=lambda s: -s.received)
    most = max(units, key=lambda s: s.received, default=None)
    best_online = max(units, key=lambda s: (s.online_rate or 0, s.received), default=None)
    best_on_time = max(units, key=lambda s: (s.on_time_rate or 0, s.resolved), default=None)

    def label(stats: procedures.UnitStats) -> str:
        return names.get(stats.unit_id, {}).get(locale, stats.unit_id)

    received_chart = bar_chart([Bar(label(s), s.received, format_number(s.received, locale)) for s in units],
                               title={"vi": "Hồ sơ tiếp nhận", "en": "Records received"}[locale],
                               maximum=max([s.received for s in units] or [1]), testid="received-chart")
    online_chart = bar_chart([Bar(label(s), 100 * (s.online_rate or 0),
                                  f"{format_number(procedures.pct(s.online_rate) or 0, locale, 2)}%",
                                  tone_for(s.online_rate, good=0.8, fair=0.6))
                              for s in sorted(units, key=lambda s: -(s.online_rate or 0))],
                             title={"vi": "Tỷ lệ nộp trực tuyến", "en": "Online submission rate"}[locale],
                             testid="online-chart")
    return render_page(request, "tasks/procedures.html", _base(request, principal, session) | {
        "window": window, "city": city, "units": units, "most": most, "best_online": best_online,
        "best_on_time": best_on_time, "pct": procedures.pct, "received_chart": received_chart,
        "online_chart": online_chart, "label": label,
        "may_import": host_of(request).authorizer.allows(principal, "tasks.procedures.import")})

