"""Case lists as CSV: `GET /api/v1/cases?format=csv` and the desk's and console's
"Export CSV" links (docs/api.md#case-lists-as-csv).

The export holds every case the list's filters match, not one page: it is streamed a
batch at a time (db/cases.py `each_batch`), so 100,000 cases take the memory of one
batch. Every cell goes through the reports' `safe_cell`, so a customer's name, a
description, a tag or a store that starts like a formula is text in a spreadsheet.
Each export is written to the audit log with who asked, the filters and the rows sent.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from flask import Response, current_app, request

from db import auditlog
from db.cases import CaseFilter, each_batch, jsonable
from db.models import Case
from web.auth import current_user
from web.reports import safe_cell


def _when(value: datetime | None) -> str | None:
    return jsonable(value) if value is not None else None


# The columns of a case-list export, in order: name and how to read it from a row.
# docs/api.md lists them; change both together.
COLUMNS: tuple[tuple[str, Callable[[Case], object]], ...] = (
    ("case_id", lambda c: c.id),
    ("created_at", lambda c: _when(c.created_at)),
    ("kind", lambda c: c.kind),
    ("channel", lambda c: c.channel),
    ("stage", lambda c: c.stage),
    ("status", lambda c: c.status),
    ("priority", lambda c: c.priority),
    ("assignee", lambda c: c.assignee),
    ("team", lambda c: c.team),
    ("store", lambda c: c.store),
    ("order_id", lambda c: c.order_id),
    ("customer_name", lambda c: c.customer_name),
    ("description", lambda c: c.data.get("description")),
    ("tags", lambda c: " ".join(c.data.get("tags") or [])),
    ("stage_due_at", lambda c: _when(c.stage_due_at)),
    ("resolution_due_at", lambda c: _when(c.resolution_due_at)),
    ("overdue", lambda c: "yes" if c.overdue else "no"),
    ("escalation_risk", lambda c: "yes" if c.escalation_risk else "no"),
    ("root_cause", lambda c: c.root_cause),
    ("resolution_type", lambda c: c.resolution_type),
    ("refunded", lambda c: f"{c.refunded:.2f}" if c.refunded is not None else None),
    ("rating", lambda c: c.rating),
    ("reopen_count", lambda c: c.reopen_count),
    ("resolved_at", lambda c: _when(c.resolved_at)),
    ("closed_at", lambda c: _when(c.closed_at)),
)
HEADER = [name for name, _ in COLUMNS]
BATCH = 500


def csv_lines(rows: list[list]) -> str:
    """Rows as CSV text, every cell made safe for a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out)
    for row in rows:
        writer.writerow(["" if value is None else safe_cell(value) for value in row])
    return out.getvalue()


def export_cases(filters: CaseFilter, sort: str, shown: dict, name: str) -> Response:
    """The cases `filters` match, in `sort` order, as a streamed CSV download named
    after `name`; `shown` is the filters as the caller gave them, for the audit log."""
    user = current_user()
    sessions = current_app.extensions["aftersales"].sessions
    who = {"actor": user.name, "role": user.role, "method": request.method,
           "path": request.full_path.rstrip("?"), "remote_addr": request.remote_addr}
    batch = current_app.config.get("EXPORT_BATCH", BATCH)

    def stream() -> Iterator[str]:
        sent, complete = 0, False
        try:
            yield csv_lines([HEADER])
            for rows in each_batch(sessions, filters, sort, batch):
                lines = csv_lines([[read(row) for _, read in COLUMNS] for row in rows])
                sent += len(rows)
                yield lines
            complete = True
        finally:
            # After the last row (or when the client went away): the rows it was sent.
            with sessions.begin() as session:
                auditlog.record(session, **who, status=200, action="cases-export",
                                at=datetime.now(UTC),
                                detail={"filters": shown, "rows": sent,
                                        "complete": complete})

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Response(stream(), content_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f"attachment; filename=aftersales-{name}-{stamp}.csv",
        "Cache-Control": "no-store"})
