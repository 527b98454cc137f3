"""The fuzz targets of bench/fuzz: each runs under atheris for a moment, and every input that ever
crashed one (tests/fixtures/fuzz/<target>/), and every seed, is replayed in-process on each run.

A crash is any exception a target lets out other than the error its parser documents.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz.targets import TARGETS
from bench.fuzz_all import CRASHES, SEEDS, fuzz

# Under atheris in CI, each target meets the same 2,000 mutated inputs on every run (a fixed libFuzzer seed and
# hash seed), so a CI result does not depend on the machine's speed or luck: finding new crashes is the work of
# `python -m bench.fuzz_all --seconds N`, whose finds are kept in tests/fixtures/fuzz/ and replayed below.
RUNS = 2000
SEED = 20261206
CAP_SECONDS = 120  # never reached on this machine (yara_rule, the slowest, takes about 12 s)


def _inputs(name: str) -> list[Path]:
    return sorted(p for folder in (CRASHES / name, SEEDS / name) if folder.is_dir() for p in folder.iterdir())


def test_the_hand_run_guide_lists_every_target_and_no_other() -> None:
    # docs/hostile-input.md's table listed eleven targets while `bench.fuzz_all --only` offered twelve.
    guide = (Path(__file__).resolve().parents[2] / "docs" / "hostile-input.md").read_text(encoding="utf-8")
    table = guide.split("## Fuzzing", 1)[1].split("\n\n| target | what it feeds |", 1)[1].split("\n\n", 1)[0]
    listed = re.findall(r"^\| `([a-z_]+)` \|", table, re.MULTILINE)
    assert listed == list(TARGETS), (listed, list(TARGETS))  # in the order --only and a full run take them


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_saved_crashes_and_seeds_are_handled(name: str) -> None:
    inputs = _inputs(name)
    assert any(p.parent == SEEDS / name for p in inputs), f"no seeds for {name}"
    for path in inputs:
        TARGETS[name](path.read_bytes())  # raises, and fails the test, if the crash came back


def test_the_crashes_fuzzing_found_are_kept() -> None:
    # What the first runs found: an empty STIX pattern, and a Zeek #separator with a cut-short escape.
    assert (CRASHES / "stix_pattern" / "crash-empty-pattern").read_bytes() == b""
    assert any(p.name.startswith("crash-") for p in (CRASHES / "log_lines").iterdir())
    # And a YARA rule with a NUL, which yara-python refuses with ValueError instead of yara.Error.
    assert b"\x00" in (CRASHES / "yara_rule" / "crash-nul-character").read_bytes()
    # And a URL indicator whose authority holds a lone ']' (urlsplit raises "Invalid IPv6 URL"), which
    # stopped a Suricata feed.
    assert b"]@" in (CRASHES / "suricata_rule" / "crash-lone-bracket-in-url-authority").read_bytes()
    # And an IDN host followed by two dots, which IDNA refuses (an empty label) while the URL check allowed it.
    assert (CRASHES / "suricata_rule" / "crash-trailing-dots-after-an-idn-host").read_bytes().endswith(b"..")
    assert b'"type":[{' in (CRASHES / "misp_event" / "crash-attribute-type-is-a-list").read_bytes()
    # And shared Suricata rules that suricataparser reads but cannot hold (a bare sid) or writes back as
    # another rule (a msg with nothing after its colon loses the colon): such lines are no rules.
    assert b"sid;)" in (CRASHES / "shared_suricata_rule" / "crash-bare-sid-option").read_bytes()
    assert b"(msg:;)" in (CRASHES / "shared_suricata_rule" / "crash-msg-with-an-empty-value").read_bytes()


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_each_target_fuzzes_under_atheris_without_a_crash(name: str, tmp_path: Path) -> None:
    result = fuzz(name, CAP_SECONDS, crashes=tmp_path, runs=RUNS, seed=SEED)
    assert result["crashes"] == [], (result["inputs"], result["error"])
    assert result["exit"] == 0, result["error"]
    assert isinstance(result["executions"], int) and result["executions"] > 0, result


def _mutations(name: str) -> st.SearchStrategy[bytes]:
    """Raw bytes, and seeds with bytes cut or spliced in: a cheap complement to atheris' coverage-guided
    runs, covering every target on every CI run even where atheris does not install."""
    seeds = [p.read_bytes() for p in sorted((SEEDS / name).iterdir())]

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        seed = draw(st.sampled_from(seeds))
        start = draw(st.integers(0, len(seed)))
        end = draw(st.integers(start, min(len(seed), start + 16)))
        return seed[:start] + draw(st.binary(max_size=16)) + seed[end:]

    return st.one_of(st.binary(max_size=256), mutated())


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_each_target_survives_mutated_seeds(name: str) -> None:
    @given(data=_mutations(name))
    @settings(max_examples=30, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(data: bytes) -> None:
        TARGETS[name](data)

    run()
