"""Shared data for the format tests: the fixture lists and a fixed clock."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "formats"
MIXED_CSV = FIXTURES / "iocs-mixed.csv"
PLAIN_TXT = FIXTURES / "iocs-plain.txt"
NOW = "2025-06-01T12:00:00.000Z"
