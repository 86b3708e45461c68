"""Charts of the supervisor console, drawn on the server as inline SVG.

No script, no stylesheet and nothing from elsewhere: each chart is an `<svg>` with a
`<title>` and `<desc>` (read by screen readers, named by `aria-labelledby`), a text
label on every bar and point, and colours given as SVG presentation attributes (the
app's Content-Security-Policy forbids inline styles, not `fill=`). Colours are dark
enough for text contrast of at least 4.5:1 on white.

Trends follow the period chosen, cut into days, weeks or months; each bucket is a
tally of db/reports.py (KPI snapshots of closed days plus the rest counted live), so
the buckets add up to the summary's figures and today's cases are in them. The
handler table comes from the live read model (db/kpi.py). `supervisor_report` gives a
page everything at once; `web/templates/charts/supervisor_reports.html` lays it out.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from sqlalchemy.orm import Session

from db import kpi
from db.reports import ReportFilter, day_start, period_tallies, sum_tallies
from db.reports import report as summary_of
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
            if bar_w >= 14:  # room for the value over the bar
                body.append(_text(x + bar_w / 2 - 1, y - 3, fmt(value), size=9))
        if i % _label_every(group_w) == 0:
            body.append(_text(LEFT + i * group_w + group_w / 2, HEIGHT - BOTTOM + 16,
                              label, size=10))
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
        if i % _label_every(step) == 0:
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
        if step >= 30:  # room for the value over the point
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


# How a period is cut for the trend charts: by UTC day up to a month, by ISO week
# (from Monday) up to a quarter, by calendar month beyond.
DAY, WEEK, MONTH = "day", "week", "month"


def bucket_edges(start: datetime, end: datetime) -> tuple[str, list[datetime]]:
    """The unit and the edges of the charts' buckets: `start`, every UTC day, Monday or
    first of a month strictly inside the period, and `end`. The first and last bucket
    may be partial (today so far is the last)."""
    span = end - start
    unit = DAY if span <= timedelta(days=31) else WEEK if span <= timedelta(days=92) \
        else MONTH
    edge = day_start(start)
    if unit == WEEK:
        edge -= timedelta(days=edge.weekday())
    elif unit == MONTH:
        edge = edge.replace(day=1)
    edges = [start]
    while True:
        if unit == MONTH:
            edge = (edge + timedelta(days=32)).replace(day=1)
        else:
            edge += timedelta(days=1 if unit == DAY else 7)
        if edge >= end:
            break
        if edge > start:
            edges.append(edge)
    return unit, [*edges, end]


@dataclass(frozen=True)
class SupervisorReport:
    """Everything the supervisor console's reports section shows."""

    start: datetime
    end: datetime
    unit: str
    labels: list[str]
    buckets: list[dict]
    cases_trend: Markup
    sla_trend: Markup
    csat_trend: Markup
    root_causes: Markup
    handlers: list[dict]
    summary: dict


def supervisor_report(session: Session, now: datetime,
                      period: ReportFilter | None = None) -> SupervisorReport:
    """The charts, the handler table and the summary of `period` (default: the last 30
    days up to `now`), all from one set of tallies: the trend charts' buckets add up to
    the summary's figures, today's cases included."""
    period = period or ReportFilter(now - timedelta(days=30), now)
    unit, edges = bucket_edges(period.start, period.end)
    buckets = period_tallies(session, period, now, edges)
    report = summary_of(session, period, sum_tallies(buckets))
    starts = [max(edge, period.start) for edge in edges[:-1]]
    labels = [f"{s:%Y-%m}" if unit == MONTH else f"{s:%m-%d}" for s in starts]
    names = {DAY: _("days"), WEEK: _("weeks"), MONTH: _("months")}
    span = _("%(unit)s from %(first)s to %(last)s (UTC)", unit=names[unit],
             first=f"{period.start:%Y-%m-%d}", last=f"{period.end:%Y-%m-%d}")

    def listing(values: Sequence, fmt: Callable) -> str:
        return "; ".join(f"{label}: {fmt(v)}" for label, v in zip(labels, values,
                                                                  strict=True))

    def share(part: int, whole: int) -> float | None:
        return round(100.0 * part / whole, 1) if whole else None

    opened = [t["opened"] for t in buckets]
    closed = [t["closed"] for t in buckets]
    met = [sum(m for m, _ in t["clocks"].values()) for t in buckets]
    breached = [sum(b for _, b in t["clocks"].values()) for t in buckets]
    sla = [share(m, m + b) for m, b in zip(met, breached, strict=True)]
    csat = [share(t["satisfied"], t["ratings"]) for t in buckets]
    return SupervisorReport(
        start=period.start, end=period.end, unit=unit, labels=labels, buckets=buckets,
        cases_trend=bar_chart(
            str(TITLES[unit][0]),
            _("%(span)s. Opened: %(opened)s. Closed: %(closed)s.", span=span,
              opened=listing(opened, str), closed=listing(closed, str)),
            labels, [Series(_("opened"), opened, BLUE), Series(_("closed"), closed, GREEN)]),
        sla_trend=line_chart(
            str(TITLES[unit][1]),
            _("%(span)s, cases by when they were opened. %(values)s.", span=span,
              values=listing(sla, _pct)),
            labels, Series(_("deadlines met"), sla, BLUE), _pct, 100.0),
        csat_trend=bar_chart(
            str(TITLES[unit][2]),
            _("%(span)s, cases by when they were opened. %(values)s.", span=span,
              values=listing(csat, _pct)),
            labels, [Series(_("satisfied"), csat, GREEN)], _pct, 100.0),
        root_causes=pareto_chart(report["root_causes"]),
        handlers=kpi.handler_rows(session, period),
        summary=report,
    )


# Each trend chart's title per bucket unit: cases, SLA attainment, satisfaction.
TITLES = {
    DAY: (_l("Cases opened and closed per day"),
          _l("SLA attainment per day (share of deadlines met)"),
          _l("Customer satisfaction per day (share of ratings 4–5)")),
    WEEK: (_l("Cases opened and closed per week"),
           _l("SLA attainment per week (share of deadlines met)"),
           _l("Customer satisfaction per week (share of ratings 4–5)")),
    MONTH: (_l("Cases opened and closed per month"),
            _l("SLA attainment per month (share of deadlines met)"),
            _l("Customer satisfaction per month (share of ratings 4–5)")),
}


def _label_every(width: float) -> int:
    """Every how many groups an axis label fits (a label is about 34 px wide)."""
    return max(1, math.ceil(34 / width))


def _nice_top(value: float) -> float:
    """A round axis maximum at or above `value`: four gridline steps of 1, 2 or 5
    times a power of ten."""
    need = max(value, 4) / 4
    magnitude = 10 ** math.floor(math.log10(need))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= need)
    return 4 * step


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}%".replace(".0%", "%")
