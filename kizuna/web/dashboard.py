"""The dashboard, the console's home: what arrived and what left per day by TLP, the newest reports
and indicators, sightings of our indicators at partners, and sync health per partner.

The numbers come from `core/dashboard.build_dashboard` for the signed-in token: its view only (what it
may see, counted through the same policy as a read), and the listed objects are audited as served.
The chart is plain SVG drawn here, with a table of the same numbers beside it, so it needs no script
and a screen reader gets the figures.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Final

from starlette.responses import Response

from kizuna.core.dashboard import DayCount, build_dashboard
from kizuna.core.vocab import HEALTH_NAMES, N_
from kizuna.web.page import Visit

DAYS: Final = 14
#: Stacking order of a day's bar, bottom up; "none" is what carries no TLP marking.
TLP_ORDER: Final = ("TLP:CLEAR", "TLP:GREEN", "TLP:AMBER", "TLP:AMBER+STRICT", "TLP:RED", "none")
_TLP_CLASS: Final = {"TLP:CLEAR": "bar-clear", "TLP:GREEN": "bar-green", "TLP:AMBER": "bar-amber",
                     "TLP:AMBER+STRICT": "bar-amber-strict", "TLP:RED": "bar-red", "none": "bar-none"}
#: Producer names core/dashboard.py gives to what has no name; translated on the page.
SPECIAL_PRODUCERS: Final = (N_("anonymous producer"), N_("no producer"), N_("unknown producer"))
CHART_HEIGHT: Final = 120
BAR_WIDTH: Final = 24
BAR_GAP: Final = 8


@dataclass(frozen=True, slots=True)
class Segment:
    tlp: str
    css: str
    count: int
    y: float
    height: float


@dataclass(frozen=True, slots=True)
class Bar:
    day: str
    label: str  # MM-DD under the bar
    x: int
    total: int
    segments: list[Segment]


@dataclass(frozen=True, slots=True)
class Chart:
    bars: list[Bar]
    width: int
    height: int
    peak: int
    levels: list[tuple[str, str]]  # (level, CSS class) of the levels that occur: the legend, the table's columns
    table: list[tuple[str, list[int], int]]  # (day, count per level, total)


def chart(counts: list[DayCount], since: str, days: int) -> Chart:
    """Bars of objects per day stacked by TLP level, over the ``days`` days from ``since``."""
    first = dt.date.fromisoformat(since[:10])
    all_days = [(first + dt.timedelta(days=n)).isoformat() for n in range(days)]
    per_day: dict[str, Counter[str]] = {day: Counter() for day in all_days}
    for count in counts:
        if count.day in per_day:
            per_day[count.day][count.tlp if count.tlp in _TLP_CLASS else "none"] += count.objects
    peak = max((sum(c.values()) for c in per_day.values()), default=0)
    scale = CHART_HEIGHT / peak if peak else 0.0
    levels = [level for level in TLP_ORDER if any(c[level] for c in per_day.values())]
    bars = []
    for n, day in enumerate(all_days):
        top = float(CHART_HEIGHT)
        segments = []
        for level in TLP_ORDER:
            value = per_day[day][level]
            if value:
                height = value * scale
                top -= height
                segments.append(Segment(level, _TLP_CLASS[level], value, round(top, 2), round(height, 2)))
        bars.append(Bar(day, day[5:], n * (BAR_WIDTH + BAR_GAP), sum(per_day[day].values()), segments))
    table = [(day, [per_day[day][level] for level in levels], sum(per_day[day].values())) for day in all_days]
    return Chart(bars, days * (BAR_WIDTH + BAR_GAP), CHART_HEIGHT, peak, [(lv, _TLP_CLASS[lv]) for lv in levels], table)


def dashboard_page(visit: Visit) -> Response:
    board = build_dashboard(visit.node, visit.principal, days=DAYS)
    producers = {name: visit.gettext(name) for name in SPECIAL_PRODUCERS}
    return visit.render(
        "dashboard.html", board=board, received=chart(board.received, board.since, board.days),
        shared=chart(board.shared, board.since, board.days), producers=producers,
        bar_width=BAR_WIDTH, health_names={k: visit.gettext(v) for k, v in HEALTH_NAMES.items()},
    )
