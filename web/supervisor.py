"""The supervisor console at `/supervisor`: overdue and at-risk cases with why and by
how much, reassignment of one or many, the approval queue, and the reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from db import accounts
from db import cases as case_store
from db.reports import ReportFilter, summary
from web.api import perform_action
from web.caseview import open_breach
from web.charts import supervisor_report
from web.desk import PER_PAGE, page_context, state
from web.gateway import ActionRefused, CaseNotRunning, TemporalUnavailable
from web.pages import staff_page
from web.problems import Problem
from web.reports import to_csv
from workflows.domain import KINDS

supervisor = Blueprint("supervisor", __name__)
MANAGERS = ("supervisor", "admin")


@supervisor.get("/supervisor")
@staff_page(*MANAGERS)
def console():
    now = datetime.now(UTC)
    with state().sessions() as session:
        overdue, overdue_total, _n = case_store.list_cases(
            session, case_store.CaseFilter(overdue=True, open_only=True), sort="due",
            per_page=PER_PAGE, page=1)
        at_risk, at_risk_total, _n = case_store.list_cases(
            session, case_store.CaseFilter(at_risk_by=now), sort="due", per_page=PER_PAGE,
            page=1)
        approvals, approvals_total, _n = case_store.list_cases(
            session, case_store.CaseFilter(status="waiting_on_approval", open_only=True),
            sort="due", per_page=PER_PAGE, page=1)
        handlers = [u for u in accounts.list_users(session) if u.active]
        session.expunge_all()
    breaches = {row.id: open_breach(row, now) for row in overdue}
    return render_template(
        "supervisor.html", **page_context(
            overdue=overdue, overdue_total=overdue_total, at_risk=at_risk,
            at_risk_total=at_risk_total, approvals=approvals,
            approvals_total=approvals_total, breaches=breaches, handlers=handlers))


@supervisor.post("/supervisor/reassign")
@staff_page(*MANAGERS)
def reassign():
    case_ids = request.form.getlist("case_id")
    assignee = (request.form.get("assignee") or "").strip()
    if not case_ids or not assignee:
        flash(_("Choose at least one case and the person to give it to."), "error")
        return redirect(url_for("supervisor.console"))
    moved, failed = 0, []
    for case_id in case_ids[:PER_PAGE * 3]:
        try:
            perform_action(case_id, "assign", {"assignee": assignee})
            moved += 1
        except (Problem, ActionRefused, CaseNotRunning, TemporalUnavailable) as err:
            failed.append(f"{case_id}: {getattr(err, 'detail', None) or err}")
    if moved:
        flash(ngettext("%(num)d case reassigned to %(who)s.",
                       "%(num)d cases reassigned to %(who)s.", moved, who=assignee), "success")
    for failure in failed:
        flash(_("Not reassigned: %(why)s", why=failure), "error")
    return redirect(url_for("supervisor.console"))


def _report_filter() -> ReportFilter:
    args = request.args
    try:
        days = max(1, min(int(args.get("days", "30")), 366))
    except ValueError:
        days = 30
    end = datetime.now(UTC)
    return ReportFilter(start=end - timedelta(days=days), end=end,
                        kind=args.get("kind") if args.get("kind") in KINDS else None,
                        handler=(args.get("handler") or "").strip()[:64] or None)


@supervisor.get("/supervisor/reports")
@staff_page(*MANAGERS)
def reports_page():
    report_filter = _report_filter()
    with state().sessions() as session:
        charts = supervisor_report(session, report_filter.end, weeks=12,
                                   period=report_filter)
    days = (report_filter.end - report_filter.start).days
    return render_template("reports.html", **page_context(
        report=charts.summary, charts=charts, days=days, report_filter=report_filter,
        KINDS=KINDS))


@supervisor.get("/supervisor/reports.csv")
@staff_page(*MANAGERS)
def reports_csv():
    with state().sessions() as session:
        body = summary(session, _report_filter())
    return Response(to_csv(body), content_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": "attachment; filename=aftersales-summary.csv"})
