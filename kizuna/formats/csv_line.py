"""One line of a CSV, read on its own.

Lists are read line by line, so that a quote left open on one line (a stray ``"`` in a cell) makes that
line malformed instead of running on into every line after it, as a CSV reader given the whole file
would: the bad line is reported with its number and the lines after it are still read.
"""

from __future__ import annotations

import csv


def csv_cells(line: str, delimiter: str = ",") -> list[str]:
    """The cells of one line (its line end already cut off); csv.Error when its quoting is malformed."""
    if '"' not in line:
        return line.split(delimiter)
    return next(csv.reader([line], delimiter=delimiter, strict=True), [])
