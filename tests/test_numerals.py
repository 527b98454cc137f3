"""One reading of a whole number written by someone else: ASCII digits only, bounded. ``str.isdigit``
accepts ``²`` (which ``int`` refuses) and ``int`` reads ``٣`` as 3; every place that reads a number
from outside goes through ``kizuna.numerals`` and answers "not a number" for both."""

from __future__ import annotations

import pytest

from kizuna.cli.common import file_and_line
from kizuna.detect.errors import MatchError
from kizuna.detect.mappings import zeek_int
from kizuna.detect.values import parse_ip_or_cidr
from kizuna.numerals import MAX_INT64, integer, typed_whole_number, whole_number
from kizuna.policy.redact import parse_selector

NOT_NUMBERS = ("", "²", "1²", "①", "٣", "１", " 1", "1 ", "+1", "-1", "1.0", "1e3", "0x1")


@pytest.mark.parametrize("text", NOT_NUMBERS)
def test_anything_but_ascii_digits_is_no_whole_number(text: str) -> None:
    assert whole_number(text) is None


def test_a_whole_number_is_read_up_to_its_bound() -> None:
    assert whole_number("0") == 0 and whole_number("007") == 7
    assert whole_number(str(MAX_INT64)) == MAX_INT64 and whole_number(str(MAX_INT64 + 1)) is None
    assert whole_number("0" * 40 + "5") == 5  # leading zeros do not count against the bound
    assert whole_number("9" * 5000) is None  # refused by its length, before int() reads it
    assert whole_number("255", 255) == 255 and whole_number("256", 255) is None
    assert integer("-12") == -12 and integer("12") == 12
    assert integer("--1") is None and integer("-²") is None and integer("-") is None


def test_each_reader_of_outside_numbers_refuses_what_int_would_raise_on() -> None:
    assert parse_selector("labels.[²]") is None and parse_selector("labels.[1]") == ("labels", 1)
    with pytest.raises(MatchError):
        parse_ip_or_cidr("198.51.100.0/²")
    assert parse_ip_or_cidr("198.51.100.0/24")[2] == 24
    assert zeek_int("²") == "²" and zeek_int("--5") == "--5" and zeek_int("-5") == -5
    assert zeek_int(str(2**64 - 1)) == 2**64 - 1
    assert file_and_line("list.txt:²") == ("list.txt:²", None) and file_and_line("list.txt:3") == ("list.txt", 3)


def test_a_typed_number_reads_full_width_digits_and_nothing_else_more() -> None:
    assert typed_whole_number("\uff13\uff11") == 31  # ３１, as a Japanese input method types it
    assert typed_whole_number("3\uff11", 255) == 31
    assert typed_whole_number("\uff12\uff15\uff16", 255) is None  # 256: the bound still holds
    for text in ("\u00b2", "\u0663", "\uff0d1", "", " 31"):  # ², Arabic-Indic 3, full-width minus, empty, space
        assert typed_whole_number(text) is None
