"""The shift report as one self-contained HTML page: the Markdown's sections, and an SVG bar chart of
activity per hour in place of the text chart (no script, no external file, so it opens anywhere)."""

from __future__ import annotations

from html import escape

_BAR_W, _CHART_H = 18, 120


def activity_svg(hours: dict[str, int]) -> str:
    """One bar per hour (``YYYY-MM-DDTHH`` -> count), labelled with its count and hour."""
    if not hours:
        return "<p>-</p>"
    peak = max(hours.values())
    bars = []
    for i, (hour, count) in enumerate(sorted(hours.items())):
        height = max(1, round(_CHART_H * count / peak))
        x = i * (_BAR_W + 4)
        bars.append(f'<rect x="{x}" y="{_CHART_H - height + 14}" width="{_BAR_W}" height="{height}" fill="#36c">'
                    f"<title>{escape(hour)}:00Z {count}</title></rect>"
                    f'<text x="{x}" y="10" font-size="9">{count}</text>'
                    f'<text x="{x}" y="{_CHART_H + 26}" font-size="9">{escape(hour[11:13])}</text>')
    width = len(hours) * (_BAR_W + 4)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{_CHART_H + 30}" role="img">'
            + "".join(bars) + "</svg>")


def to_html(markdown: str, hours: dict[str, int], lang: str) -> str:
    """The report's Markdown (headings, paragraphs, lists, one fenced chart) as an HTML page."""
    body: list[str] = []
    in_list = in_chart = False
    title = ""
    for line in markdown.splitlines():
        if line.startswith("```"):
            if not in_chart:
                body.append(activity_svg(hours))
            in_chart = not in_chart
            continue
        if in_chart:
            continue
        if line.startswith("- "):
            if not in_list:
                body.append("<ul>")
                in_list = True
            body.append(f"<li>{escape(line[2:])}</li>")
            continue
        if in_list:
            body.append("</ul>")
            in_list = False
        if line.startswith("## "):
            body.append(f"<h2>{escape(line[3:])}</h2>")
        elif line.startswith("# "):
            title = line[2:]
            body.append(f"<h1>{escape(title)}</h1>")
        elif line.strip():
            body.append(f"<p>{escape(line)}</p>")
    if in_list:
        body.append("</ul>")
    return (f'<!DOCTYPE html>\n<html lang="{escape(lang)}"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
