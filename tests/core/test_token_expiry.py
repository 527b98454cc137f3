"""How far ahead a token's expiry may lie: at most five calendar years, as the CLI and the console parse it."""

from __future__ import annotations

import pytest

from kizuna.core.tokens import MAX_EXPIRY_YEARS, ExpiryTooFar, latest_expiry, parse_expiry
from kizuna.stix.timestamps import format_timestamp, parse_timestamp

NOW = parse_timestamp("2026-12-07T16:00:00.250000Z")


def test_the_latest_expiry_is_the_same_moment_five_calendar_years_on() -> None:
    assert MAX_EXPIRY_YEARS == 5
    assert format_timestamp(latest_expiry(NOW)) == "2031-12-07T16:00:00.250000Z"
    leap_day = parse_timestamp("2028-02-29T08:00:00Z")
    assert format_timestamp(latest_expiry(leap_day)) == "2033-02-28T08:00:00.000000Z"


def test_an_expiry_up_to_the_bound_is_taken_and_beyond_it_refused() -> None:
    assert parse_expiry("2031-12-07T16:00:00.25Z", NOW) == latest_expiry(NOW)
    assert parse_expiry("1826d", NOW) == NOW + 1826 * 86400 * 1_000_000  # five years, one leap day among them
    for given in ("1827d", "9999999d", "43849h", "2031-12-07T16:00:00.250001Z", "9999-12-31"):
        with pytest.raises(ExpiryTooFar, match=f"--expires '{given}' is more than 5 years from now"):
            parse_expiry(given, NOW)
