"""Charts of the supervisor console, drawn on the server as inline SVG.

No script, no stylesheet and nothing from elsewhere: each chart is an `<svg>` with a
`<title>` and `<desc>` (read by screen readers, named by `aria-labelledby`), a text
label on every bar and point, and colours given as SVG presentation attributes (the
app's Content-Security-Policy forbids inline styles, not `fill=`). Colours are dark
enough for text contrast of at least 4.5:1 on white.

Trends come from the nightly KPI snapshots (db/kpi.py), the Pareto and the handler
table from the live read model (db/reports.py, db/kpi.py). `supervisor_report` gives a
page everything at once; `web/templates/charts/supervisor_reports.html` lays it out.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext as _
from markupsafe import Markup, escape
from sqlalchemy.orm import Session

from db import kpi
from db.reports import ReportFilter, summary
from web.caseview import ROOT_CAUSE_NAMES

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 28, 44
INK = "#1d2330"  # text, 15:1 on white
GRID = "#c4c9d2"
BLUE = "#1f4e9c"  # 8.3:1 on white
ORANGE = "#a64b00"  # 6.0:1 on white
GREEN = "#1b6e3a"  # 6.5:1 on white
FONT = 'font-family="system-ui, sans-serif"'
_ids = itertools.count(1)


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    colour: str


def _svg(title: str, desc: str, body: list[str], height: int = HEIGHT) -> Markup:
    n = next(_ids)
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'aria-labelledby="chart{n}-title chart{n}-desc">'
        f'<title id="chart{n}-title">{escape(title)}</title>'
        f'<desc id="chart{n}-desc">{escape(desc)}</desc>'
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>'
        + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, anchor: str = "middle", size: int = 11,
          colour: str = INK, weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
            f'font-weight="{weight}" fill="{colour}" {FONT}>{escape(text)}</text>')


def _text_width(text: str, size: int = 11) -> int:
    """Rough width of a label: Chinese characters are about twice as wide as Latin."""
    return sum(size if ord(c) > 0x2E80 else round(size * 0.62) for c in text)


def _legend(series: Sequence[Series]) -> list[str]:
    out, x = [], LEFT
    for s in series:
        out.append(f'<rect x="{x}" y="8" width="10" height="10" fill="{s.colour}"/>')
        out.append(_text(x + 14, 17, s.name, "start"))
        x += 20 + _text_width(s.name)
    return out


def _axis(top_value: float, fmt: Callable[[float], str]) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    out = []
    for i in range(5):
        value = top_value * i / 4
        y = HEIGHT - BOTTOM - plot_h * i / 4
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
                   f'stroke="{GRID}" stroke-width="1"/>')
        out.append(_text(LEFT - 6, y + 4, fmt(value), "end", 10))
    return out


def bar_chart(title: str, desc: str, labels: Sequence[str], series: Sequence[Series],
              fmt: Callable[[float], str] = lambda v: f"{v:.0f}",
              top_value: float | None = None) -> Markup:
    """Grouped vertical bars, one group per label, each bar labelled with its value;
    a missing value (None) is shown as "–"."""
    present = [v for s in series for v in s.values if v is not None]
    top = top_value or _nice_top(max(present, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group_w = plot_w / max(1, len(labels))
    bar_w = min(28.0, group_w * 0.8 / max(1, len(series)))
    body = _legend(series) + _axis(top, fmt)
    for i, label in enumerate(labels):
        x0 = LEFT + i * group_w + (group_w - bar_w * len(series)) / 2
        for j, s in enumerate(series):
            value = s.values[i]
            x = x0 + j * bar_w
            if value is None:
                body.append(_text(x + bar_w / 2, HEIGHT - BOTTOM - 4, "–", size=10))
                continue
            h = plot_h * value / top if top else 0
            y = HEIGHT - BOTTOM - h
            body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" '
                        f'height="{h:.1f}" fill="{s.colour}"><title>{escape(s.name)} '
                        f'{escape(label)}: {escape(fmt(value))}</title></rect>')
            body.append(_text(x + bar_w / 2 - 1, y - 3, fmt(value), size=9))
        body.append(_text(LEFT + i * group_w + group_w / 2, HEIGHT - BOTTOM + 16, label,
                          size=10))
    return _svg(title, desc, body)


def line_chart(title: str, desc: str, labels: Sequence[str], series: Series,
               fmt: Callable[[float], str], top_value: float) -> Markup:
    """One line of points with a value label on each; gaps where a value is None."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(labels))
    body = _legend([series]) + _axis(top_value, fmt)
    points: list[tuple[float, float] | None] = []
    for i, value in enumerate(series.values):
        x = LEFT + i * step + step / 2
        body.append(_text(x, HEIGHT - BOTTOM + 16, labels[i], size=10))
        if value is None:
            points.append(None)
            body.append(_text(x, HEIGHT - BOTTOM - 4, "–", size=10))
            continue
        y = HEIGHT - BOTTOM - plot_h * value / top_value
        points.append((x, y))
    for a, b in itertools.pairwise(points):
        if a is not None and b is not None:
            body.append(f'<line x1="{a[0]:.1f}" y1="{a[1]:.1f}" x2="{b[0]:.1f}" '
                        f'y2="{b[1]:.1f}" stroke="{series.colour}" stroke-width="2"/>')
    for point, value, label in zip(points, series.values, labels, strict=True):
        if point is None or value is None:
            continue
        body.append(f'<circle cx="{point[0]:.1f}" cy="{point[1]:.1f}" r="4" '
                    f'fill="{series.colour}"><title>{escape(label)}: {escape(fmt(value))}'
                    f'</title></circle>')
        body.append(_text(point[0], point[1] - 8, fmt(value), size=9))
    return _svg(title, desc, body)


def pareto_chart(root_causes: Sequence[dict]) -> Markup:
    """Horizontal bars of the root causes, most frequent first, each labelled with its
    count, share and cumulative share."""
    row_h = 24
    height = TOP + row_h * max(1, len(root_causes)) + 12
    label_w = 170
    plot_w = WIDTH - label_w - 150
    top = max((r["count"] for r in root_causes), default=0) or 1
    body = []
    if not root_causes:
        body.append(_text(WIDTH / 2, TOP + 12, _("No analysed cases in this period.")))
    for i, r in enumerate(root_causes):
        y = TOP + i * row_h
        w = plot_w * r["count"] / top
        name = str(ROOT_CAUSE_NAMES.get(r["root_cause"], r["root_cause"]))
        body.append(_text(label_w - 8, y + 15, name, "end"))
        body.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" '
                    f'fill="{ORANGE}"><title>{escape(name)}: {r["count"]}</title></rect>')
        body.append(_text(label_w + w + 6, y + 15,
                          _("%(count)s · %(pct)s (cumulative %(cumulative)s)",
                            count=r["count"], pct=_pct(r["pct"]),
                            cumulative=_pct(r["cumulative_pct"])), "start", 10))
    desc = "; ".join(_("%(cause)s: %(count)s cases, %(pct)s, cumulative %(cumulative)s",
                       cause=ROOT_CAUSE_NAMES.get(r["root_cause"], r["root_cause"]),
                       count=r["count"], pct=_pct(r["pct"]),
                       cumulative=_pct(r["cumulative_pct"]))
                     for r in root_causes) or _("No analysed cases in this period.")
    return _svg(_("Why customers complain: root causes, most frequent first"), desc, body,
                height)


@dataclass(frozen=True)
class SupervisorReport:
    """Everything the supervisor console's reports section shows."""

    start: datetime
    end: datetime
    weeks: list[kpi.Week]
    cases_trend: Markup
    sla_trend: Markup
    csat_trend: Markup
    root_causes: Markup
    handlers: list[dict]
    summary: dict


def supervisor_report(session: Session, now: datetime, weeks: int = 12,
                      period: ReportFilter | None = None) -> SupervisorReport:
    """The charts and the handler table. Trends cover the last `weeks` ISO weeks from the
    KPI snapshots; the Pareto, the handler table and the summary cover `period`
    (default: the last 30 days up to `now`)."""
    period = period or ReportFilter(now - timedelta(days=30), now)
    week_rows = kpi.weekly(session, now, weeks)
    labels = [f"{w.start:%m-%d}" for w in week_rows]
    span = (_("weeks starting %(first)s to %(last)s", first=f"{week_rows[0].start:%Y-%m-%d}",
              last=f"{week_rows[-1].start:%Y-%m-%d}") if week_rows else _("no weeks"))
    report = summary(session, period)

    def listing(values: Sequence, fmt: Callable) -> str:
        return "; ".join(_("week of %(week)s: %(value)s", week=f"{w.start:%Y-%m-%d}",
                           value=fmt(v))
                         for w, v in zip(week_rows, values, strict=True))

    opened = [w.opened for w in week_rows]
    closed = [w.closed for w in week_rows]
    sla = [w.sla_pct for w in week_rows]
    csat = [w.csat_pct for w in week_rows]
    return SupervisorReport(
        start=period.start, end=period.end, weeks=week_rows,
        cases_trend=bar_chart(
            _("Cases opened and closed per week"),
            _("%(span)s. Opened: %(opened)s. Closed: %(closed)s.", span=span,
              opened=listing(opened, str), closed=listing(closed, str)),
            labels, [Series(_("opened"), opened, BLUE), Series(_("closed"), closed, GREEN)]),
        sla_trend=line_chart(
            _("SLA attainment per week (share of deadlines met)"),
            _("%(span)s, cases by the week they were opened. %(values)s.", span=span,
              values=listing(sla, _pct)),
            labels, Series(_("deadlines met"), sla, BLUE), _pct, 100.0),
        csat_trend=bar_chart(
            _("Customer satisfaction per week (share of ratings 4–5)"),
            _("%(span)s, cases by the week they were opened. %(values)s.", span=span,
              values=listing(csat, _pct)),
            labels, [Series(_("satisfied"), csat, GREEN)], _pct, 100.0),
        root_causes=pareto_chart(report["root_causes"]),
        handlers=kpi.handler_rows(session, period),
        summary=report,
    )


def _nice_top(value: float) -> float:
    """A round axis maximum at or above `value`: four gridline steps of 1, 2 or 5
    times a power of ten."""
    need = max(value, 4) / 4
    magnitude = 10 ** math.floor(math.log10(need))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= need)
    return 4 * step


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}%".replace(".0%", "%")
