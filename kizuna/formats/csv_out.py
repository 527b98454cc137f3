"""CSV for spreadsheets: one row per IOC with the indicator's context, safe to open in Excel.

Cells that a spreadsheet would evaluate as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab
or carriage return) get a leading apostrophe: partner-supplied descriptions must not run on an
analyst's machine.

``value`` is the IOC as the indicator states it, an international name in Unicode, which people read.
``wire_value`` adds, where it differs, the form DNS filters, proxies and IDS engines match (`iocs.wire_form`:
IDNA A-labels, a URL's path percent-encoded), the one the machine feeds write, so a spreadsheet row can be
searched for in logs. It is empty for ASCII values, which are their own wire form.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any, Final

from kizuna.formats.base import ConversionReport
from kizuna.formats.feeds import DEFAULT_OPTIONS, FeedOptions, on_the_wire, select
from kizuna.formats.warninglists import WARNINGLIST_PROPERTY
from kizuna.policy.tlp import LEVEL_BY_ANY_ID

COLUMNS: Final = ("type", "value", "indicator_id", "name", "description", "tlp", "confidence", "valid_from",
                  "valid_until", "labels", "warninglists", "modified", "wire_value")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = ";".join(str(v) for v in value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _tlp(indicator: dict[str, Any]) -> str:
    levels = [LEVEL_BY_ANY_ID[r] for r in indicator.get("object_marking_refs") or () if r in LEVEL_BY_ANY_ID]
    return max(levels).label if levels else ""


def write_csv(
    objects: Iterable[dict[str, Any] | bytes | str],
    *,
    options: FeedOptions = DEFAULT_OPTIONS,
    report: ConversionReport | None = None,
) -> Iterator[str]:
    """Lines of a CSV file (header first, ``\\r\\n`` line ends as RFC 4180 asks), one row per IOC.

    The ``type`` and ``value`` columns are what `read_ioc_list` reads back.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def row(cells: Iterable[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(cells)
        return buffer.getvalue()

    yield row(COLUMNS)
    for selected in select(objects, options, report):
        o = selected.indicator
        context = [o.get("id"), o.get("name"), o.get("description"), _tlp(o), o.get("confidence"),
                   o.get("valid_from"), o.get("valid_until"), o.get("labels"), o.get(WARNINGLIST_PROPERTY),
                   o.get("modified")]
        for kind, value in selected.terms:
            yield row(_cell(c) for c in (kind, value, *context, _wire_value(kind, value, o, report)))


def _wire_value(kind: str, value: str, indicator: dict[str, Any], report: ConversionReport | None) -> str:
    """The ``wire_value`` cell: the wire form of a non-ASCII value, empty for an ASCII one (the same)."""
    if value.isascii():
        return ""
    # None: the row stays (people can read the name), its wire form reported missing
    return on_the_wire(kind, value, str(indicator.get("id", "?")), report, "wire_value") or ""
