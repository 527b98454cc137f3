"""Zeek TSV rows on the fast path: split the row, convert only the cells the probe reads.

`LogReader._tsv_record` turns every cell of a row into a Python value by its Zeek type — some
thirty cells for an http.log row — before the mapping's probe (kizuna/detect/fast.py) looks at the
two or three that the index holds. A row reader compiled here, once per header and per probe,
splits the row and converts only the cells whose field the probe reads, with the very same rules,
into a small record; the probe then answers for that record exactly as for the whole one, since
it looks at nothing else. Rows the probe lets through, rows of the wrong length, and anything
unusual at the start of a line go through `LogReader.read_line` as before, so bad lines are
reported by the one reader that always did.

A `bytes` row is split before it is decoded, and only the cells read are decoded. With a
separator of plain ASCII (Zeek's tab) this gives the same cells as decoding first: no byte below
0x80 is ever part of a multi-byte UTF-8 sequence, so a split cannot cut one in two, and an
undecodable byte is replaced the same way on either side of a separator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kizuna.detect.mappings import Record, TsvLayout, zeek_int

RowProbe = Callable[[Any], bool | None]
#: What a probe may raise on a value it cannot read (a bad number, a missing key): the row then goes
#: the full way, which reports the problem as it would anyway.
PROBE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)

_LIST_KINDS = ("set[", "vector[", "table[")
_INT_KINDS = ("count", "int", "port")
_FLOAT_KINDS = ("time", "interval", "double")


def compile_row_probe(
    layout: TsvLayout, wanted: frozenset[str], probe: Callable[[Record], bool], as_bytes: bool
) -> RowProbe | None:
    """raw row -> the probe's answer for the record of its `wanted` cells, or None when the line is
    not a plain row of this header or has a cell the probe cannot read: its length differs, or it
    does not start with a printable ASCII character other than `#` (a header) and `{` (JSON) — blank
    lines, leading whitespace and non-ASCII first characters that `str.strip` might remove keep to
    `read_line`. None instead of
    a function: the separator is not ASCII, so bytes cannot be split before decoding."""
    if as_bytes and not layout.separator.isascii():
        return None
    names: dict[str, Any] = {
        "SEP": layout.separator.encode() if as_bytes else layout.separator,
        "END": b"\r\n" if as_bytes else "\r\n",
        "LOW": b"!" if as_bytes else "!",
        "HIGH": b"\x7f" if as_bytes else "\x7f",
        "OTHER": (b"#", b"{") if as_bytes else ("#", "{"),
        "UNSET": layout.unset,
        "EMPTY": layout.empty,
        "SET": layout.set_separator,
        "probe": probe,
        "zeek_int": zeek_int,
        "ERRORS": PROBE_ERRORS,
    }
    lines = [
        "def row(raw):",
        "    h = raw[:1]",
        "    if not LOW <= h < HIGH or h in OTHER: return None",
        "    c = raw.rstrip(END).split(SEP)",
        f"    if len(c) != {len(layout.fields)}: return None",
        "    r = {}",
    ]
    # `_tsv_record` zips names, cells and types: columns beyond the shorter list are not read.
    # Columns are visited in order so that, as there, a repeated name keeps its last set value.
    for column, (name, kind) in enumerate(zip(layout.fields, layout.types, strict=False)):
        if name not in wanted:
            continue
        cell = f"c[{column}].decode('utf-8', 'replace')" if as_bytes else f"c[{column}]"
        lines.append(f"    x = {cell}")
        lines.append("    if x != UNSET:")
        key = repr(name)
        if kind.startswith(_LIST_KINDS):
            lines.append(f"        r[{key}] = [] if x == EMPTY else x.split(SET)")
        elif kind in _INT_KINDS:
            lines.append(f"        r[{key}] = zeek_int(x)")
        elif kind in _FLOAT_KINDS:
            lines.append("        try:")
            lines.append(f"            r[{key}] = float(x)")
            lines.append("        except ValueError:")
            lines.append(f"            r[{key}] = x")
        elif kind == "bool":
            lines.append(f"        r[{key}] = x == 'T'")
        else:
            lines.append(f"        r[{key}] = x")
    lines.append("    try:")
    lines.append("        return probe(r)")
    lines.append("    except ERRORS:")
    lines.append("        return None  # a cell the probe cannot read: the full path decides")
    code = compile("\n".join(lines) + "\n", "<kizuna-detect tsv row>", "exec")
    exec(code, names)  # noqa: S102 - source generated above; field names enter via repr()
    row_probe: RowProbe = names["row"]
    return row_probe
