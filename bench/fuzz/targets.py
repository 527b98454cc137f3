"""Fuzz targets for every parser that reads input from outside the node.

Each target takes arbitrary bytes and feeds them to one parser the way the node does. The parser
may refuse the input only with the error it documents (a STIX problem string, BundleSyntaxError,
FormatError, PatternError, a counted bad log line); any other exception escaping a target is a
crash: atheris saves the input, and tests/hostile/test_fuzz.py replays it forever after.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache
from typing import Any

# Each target imports its parser itself: an atheris process then instruments and loads only the
# modules its target reaches (the MISP converter alone takes seconds to import).

_NOW = "2026-01-01T00:00:00.000Z"  # fixed, so that a replayed crash takes the same path


def stix_bundle(data: bytes) -> None:
    """A bundle file as `kizuna import` streams it, and the same bytes as a TAXII POST body."""
    from kizuna.core.errors import KizunaError
    from kizuna.core.ingest import parse_envelope, prepare
    from kizuna.stix.bundle_stream import BundleSyntaxError, iter_bundle_objects

    try:
        for _, obj in iter_bundle_objects(io.BytesIO(data), "fuzz", chunk_size=64):
            prepare(obj)
    except BundleSyntaxError:
        pass
    try:
        for obj in parse_envelope(data):
            prepare(obj)
    except KizunaError:
        pass


def stix_pattern(data: bytes) -> None:
    """A pattern as an indicator carries it: validated, and compiled for matching when valid."""
    from kizuna.detect.compiler import compile_pattern
    from kizuna.detect.errors import PatternError
    from kizuna.stix.patterns import stix_pattern_problem

    text = data.decode("utf-8", "replace")
    if stix_pattern_problem(text) is None:
        try:
            compile_pattern(text)
        except PatternError:
            pass


@cache
def _mappings() -> list[Any]:
    from kizuna.detect.mappings import shipped_mappings

    return list(shipped_mappings().values())


def log_lines(data: bytes) -> None:
    """Zeek (JSON or TSV with its header), Suricata EVE and ECS lines, each mapping picked by its fields."""
    from kizuna.detect.mappings import LogReader

    reader = LogReader(_mappings())
    for _ in reader.events(data.splitlines()):
        pass


def misp_event(data: bytes) -> None:
    """A MISP event document as `kizuna import` and a MISP feed partner read it."""
    from kizuna.formats.base import FormatError
    from kizuna.formats.misp_in import read_misp

    try:
        read_misp(data, "fuzz.json")
    except FormatError:
        pass


def csv_iocs(data: bytes) -> None:
    """A CSV or text IOC list; bad lines are rejected one by one, an unreadable file is a FormatError."""
    from kizuna.formats.base import FormatError
    from kizuna.formats.ioc_lists import read_ioc_list

    try:
        read_ioc_list(io.BytesIO(data), "fuzz.csv", warninglists=None, now=_NOW)
    except FormatError:
        pass


TARGETS: dict[str, Callable[[bytes], None]] = {
    "stix_bundle": stix_bundle,
    "stix_pattern": stix_pattern,
    "log_lines": log_lines,
    "misp_event": misp_event,
    "csv_iocs": csv_iocs,
}
