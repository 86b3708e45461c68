"""GET /api/v1/reports/summary: the supervisor's KPIs, as JSON or CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, current_app, request
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from db.reports import ReportFilter, summary
from web.auth import require
from web.schemas import team_name
from workflows.case.vocabulary import CHANNELS, KINDS, PRIORITIES

reports = Blueprint("reports", __name__)
DEFAULT_PERIOD = timedelta(days=30)


class ReportQuery(Schema):
    start = fields.AwareDateTime(data_key="from", default_timezone=UTC)
    end = fields.AwareDateTime(data_key="to", default_timezone=UTC)
    kind = fields.String(validate=validate.OneOf(KINDS))
    channel = fields.String(validate=validate.OneOf(CHANNELS))
    handler = fields.String(validate=validate.Length(min=1, max=64))
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    team = fields.String(validate=team_name)
    store = fields.String(validate=validate.Length(min=1, max=64))
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "csv")))

    @validates_schema
    def ordered(self, data: dict, **kwargs) -> None:
        if data.get("start") and data.get("end") and data["start"] >= data["end"]:
            raise ValidationError("from must be before to", "from")


@reports.get("/reports/summary")
@require("reports.read")
def report_summary():
    query = ReportQuery().load(request.args.to_dict())
    end = query.get("end") or datetime.now(UTC)
    start = query.get("start") or end - DEFAULT_PERIOD
    report_filter = ReportFilter(start=start, end=end, kind=query.get("kind"),
                                 channel=query.get("channel"), handler=query.get("handler"),
                                 priority=query.get("priority"), team=query.get("team"),
                                 store=query.get("store"))
    with current_app.extensions["aftersales"].sessions() as session:
        body = summary(session, report_filter)
    wants_csv = query["format"] == "csv" or (
        request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"
        and "format" not in request.args)
    if wants_csv:
        return Response(to_csv(body), content_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": "attachment; filename=aftersales-summary.csv"})
    return body


# What a spreadsheet takes for a formula at the start of a cell (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """A cell a spreadsheet shows as text: a string that would start a formula gets a
    leading apostrophe. Numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def rows_to_csv(header: list[str], rows: list[list]) -> str:
    """A table as CSV, every cell made safe for a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if value is None else safe_cell(value) for value in row])
    return out.getvalue()


# The key that names a row of a list in the report (a root cause, a party, a team, a
# store); a team or store of null is "(none)".
ROW_LABELS = ("root_cause", "party", "team", "store")


def to_csv(body: dict) -> str:
    """The same report as rows of metric path and value, e.g. `csat.satisfied_pct,80.0`."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["metric", "value"])

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        elif isinstance(value, list):
            for item in value:
                key = next(k for k in ROW_LABELS if k in item)
                label = "(none)" if item[key] is None else item[key]
                walk(f"{prefix}.{label}", {k: v for k, v in item.items() if k != key})
        else:
            writer.writerow([safe_cell(prefix), "" if value is None else safe_cell(value)])

    walk("", body)
    return out.getvalue()
