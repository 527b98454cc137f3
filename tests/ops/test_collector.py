"""The CLI's bulk reads pause Python's cyclic garbage collector and must always leave it as they found it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from kizuna.ops.reading import collector_paused


@pytest.fixture
def collector_state() -> Iterator[None]:
    was_on = gc.isenabled()
    yield
    gc.enable() if was_on else gc.disable()


def test_the_collector_is_off_inside_and_on_again_after(collector_state: None) -> None:
    gc.enable()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_error_inside_still_switches_the_collector_back_on(collector_state: None) -> None:
    gc.enable()
    with pytest.raises(RuntimeError, match="mid-report"), collector_paused():
        raise RuntimeError("mid-report")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off(collector_state: None) -> None:
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_nested_pauses_switch_it_back_on_once_at_the_outermost(collector_state: None) -> None:
    gc.enable()
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
