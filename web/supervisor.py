"""The supervisor console at `/supervisor`: overdue and at-risk cases with why and by
how much, reassignment of one or many, the approval queue, and the reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from aftersales import events_out
from db import accounts, teams
from db import cases as case_store
from db.reports import ReportFilter, summary
from web.caseview import open_breach
from web.charts import supervisor_report
from web.commands import perform_action
from web.desk import PER_PAGE, page_context, query_args, state, team_filters
from web.export import export_cases
from web.gateway import ActionRefused, CaseNotRunning, TemporalUnavailable
from web.pages import staff_page
from web.problems import Problem
from web.reasons import say_refusal
from web.reports import to_csv
from workflows.case.vocabulary import KINDS, MANAGERS

supervisor = Blueprint("supervisor", __name__)



@supervisor.get("/supervisor")
@staff_page(*MANAGERS)
def console():
    now = datetime.now(UTC)
    filters = team_filters(request.args)
    with state().sessions() as session:
        scope = console_scope(session)
        lists = console_lists(filters, now, scope)
        overdue, overdue_total, _n = case_store.list_cases(
            session, lists["overdue"], sort="due", per_page=PER_PAGE, page=1)
        at_risk, at_risk_total, _n = case_store.list_cases(
            session, lists["at-risk"], sort="due", per_page=PER_PAGE, page=1)
        approvals, approvals_total, _n = case_store.list_cases(
            session, lists["approvals"], sort="due", per_page=PER_PAGE, page=1)
        handlers = teams.workloads(session, list(scope))
        endpoints = events_out.status(session, state().settings.event_webhook_urls)
        session.expunge_all()
    breaches = {row.id: open_breach(row, now) for row in overdue}
    return render_template(
        "supervisor.html", **page_context(
            overdue=overdue, overdue_total=overdue_total, at_risk=at_risk,
            at_risk_total=at_risk_total, approvals=approvals,
            approvals_total=approvals_total, breaches=breaches, handlers=handlers,
            endpoints=endpoints, filters=filters, export_args=query_args(filters),
            TEAMS=[rule.name for rule in state().routing.teams]))


def console_scope(session) -> tuple[str, ...]:
    """The teams whose cases the signed-in manager's console shows: a supervisor's own
    (with the cases of no team), every team for an admin or a supervisor in no team —
    the cases web/auth.OWNERSHIP lets them act on, so a bulk reassign is not refused."""
    return () if g.user.role == "admin" else tuple(teams.teams_of(session, g.user.name))


def console_lists(filters: dict, now: datetime,
                  scope: tuple[str, ...]) -> dict[str, case_store.CaseFilter]:
    """The console's lists, in the manager's scope and narrowed by team and store: the
    page shows their first cases, the "Export CSV" links all of them."""
    return {
        "overdue": case_store.CaseFilter(overdue=True, open_only=True, queue_of=scope,
                                         **filters),
        "at-risk": case_store.CaseFilter(at_risk_by=now, queue_of=scope, **filters),
        "approvals": case_store.CaseFilter(status="waiting_on_approval", open_only=True,
                                           queue_of=scope, **filters),
    }


@supervisor.get("/supervisor/export.csv")
@staff_page(*MANAGERS)
def export():
    """One of the console's lists (`list`: overdue, at-risk or approvals) as CSV."""
    filters = team_filters(request.args)
    which = request.args.get("list")
    with state().sessions() as session:
        lists = console_lists(filters, datetime.now(UTC), console_scope(session))
    if which not in lists:
        return render_template("message.html", title=_("No such list"), message=_(
            "The console has no list “%(name)s”.", name=which or "")), 404
    return export_cases(lists[which], "due", {"list": which, **query_args(filters)},
                        f"console-{which}")


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
        except (ActionRefused, Problem) as err:  # by its code, in the page's language
            failed.append(f"{case_id}: {say_refusal(err)}")
        except (CaseNotRunning, TemporalUnavailable) as err:
            failed.append(f"{case_id}: {err}")
    if moved:
        flash(ngettext("%(num)d case reassigned to %(who)s.",
                       "%(num)d cases reassigned to %(who)s.", moved, who=assignee), "success")
    for failure in failed:
        flash(_("Not reassigned: %(why)s", why=failure), "error")
    return redirect(url_for("supervisor.console"))


PERIODS = ("month", "last-month", "7", "30", "90", "365")


def _report_filter() -> tuple[ReportFilter, str]:
    """The period asked for (this or last calendar month in the store's time zone, or
    the last N days) and the kind, handler, team and store filters."""
    args = request.args
    asked = args.get("period")
    period = asked if asked in PERIODS else "month"
    now = datetime.now(UTC)
    if period in ("month", "last-month"):
        zone = ZoneInfo(state().policy.calendar.timezone)
        first = now.astimezone(zone).replace(day=1, hour=0, minute=0, second=0,
                                             microsecond=0)
        if period == "month":
            start, end = first, now
        else:
            end = first
            start = (first - timedelta(days=1)).replace(day=1)
    else:
        start, end = now - timedelta(days=int(period)), now
    return ReportFilter(start=start.astimezone(UTC), end=end.astimezone(UTC),
                        kind=args.get("kind") if args.get("kind") in KINDS else None,
                        handler=(args.get("handler") or "").strip()[:64] or None,
                        **team_filters(args)), period


@supervisor.get("/supervisor/reports")
@staff_page(*MANAGERS)
def reports_page():
    report_filter, period = _report_filter()
    with state().sessions() as session:
        charts = supervisor_report(session, datetime.now(UTC), period=report_filter)
        handlers = [u.name for u in accounts.list_users(session) if u.role == "handler"]
    return render_template("reports.html", **page_context(
        report=charts.summary, charts=charts, period=period, PERIODS=PERIODS,
        money_total=Decimal(charts.summary["refunds"]["amount"])
        + Decimal(charts.summary["compensation"]["coupon_value"]),
        report_filter=report_filter, handlers=handlers, KINDS=KINDS,
        TEAMS=[rule.name for rule in state().routing.teams],
        csv_args=query_args({"period": period, **report_filter.named()})))


@supervisor.get("/supervisor/reports.csv")
@staff_page(*MANAGERS)
def reports_csv():
    with state().sessions() as session:
        body = summary(session, _report_filter()[0])
    return Response(to_csv(body), content_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": "attachment; filename=aftersales-summary.csv"})
