"""Run every fuzz target under atheris for a set time; keep what crashes as a regression fixture.

    python -m bench.fuzz_all --seconds 60             # each target for a minute
    python -m bench.fuzz_all --seconds 10 --only stix_pattern

Each target runs in its own process (bench/fuzz/run_target.py) with the seeds of
bench/fuzz/seeds/<target>/ and a scratch corpus; a crashing input is written to
tests/fixtures/fuzz/<target>/crash-<sha1>, which tests/hostile/test_fuzz.py replays on every CI run.
Prints one line per target and, with --json, one JSON line: executions, crashes, seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "bench" / "fuzz" / "seeds"
CRASHES = ROOT / "tests" / "fixtures" / "fuzz"
_EXECUTIONS = re.compile(r"#(\d+)\s+(?:DONE|pulse|NEW|REDUCE|INITED)")


def _positive(text: str) -> int:
    # libFuzzer reads -max_total_time=0 (and below) as "no limit": a run that never ends.
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds of at least 1")
    return value


def fuzz(name: str, seconds: int, crashes: Path = CRASHES, *, runs: int | None = None,
         seed: int | None = None) -> dict[str, object]:
    """Run one target; returns what it did. A crash leaves its input under ``crashes/name/``.

    With ``runs`` and ``seed`` the run is a replayable one (CI's): libFuzzer's mutations follow the seed and
    stop after ``runs`` inputs, and Python's hash seed is fixed, so the same code meets the same inputs on any
    machine, however fast; ``seconds`` is then only a safety cap. Without them, it is a campaign of ``seconds``.
    """
    out = crashes / name
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.iterdir())
    started = time.monotonic()
    replay = [f"-runs={runs}"] if runs is not None else []
    replay += [f"-seed={seed}"] if seed is not None else []
    env = {**os.environ, "PYTHONHASHSEED": "0"} if seed is not None else None
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as corpus:
        result = subprocess.run(
            [sys.executable, "-m", "bench.fuzz.run_target", name, f"-max_total_time={seconds}", *replay,
             f"-artifact_prefix={out}/", "-rss_limit_mb=2048", "-timeout=20", corpus, str(SEEDS / name)],
            cwd=ROOT, capture_output=True, text=True, errors="replace", timeout=seconds + 120, env=env,
        )
    new = sorted(set(out.iterdir()) - before)
    found = sorted(str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p) for p in new)
    counts = [int(n) for n in _EXECUTIONS.findall(result.stderr)]
    return {"target": name, "seconds": round(time.monotonic() - started, 1), "executions": max(counts, default=0),
            "exit": result.returncode, "crashes": found,
            # the input itself, so a crash found on a machine that is gone (a CI runner) can be kept and replayed
            "inputs": [repr(p.read_bytes()[:2000]) for p in new],
            "error": "" if result.returncode == 0 else result.stderr[-2000:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=_positive, default=30, help="time per target (at least 1)")
    parser.add_argument("--only", action="append", choices=sorted(TARGETS), help="run only these targets")
    parser.add_argument("--json", action="store_true", help="one JSON line instead of a table")
    args = parser.parse_args()
    results = [fuzz(name, args.seconds) for name in (args.only or TARGETS)]
    if args.json:
        print(json.dumps({"bench": "fuzz_all", "seconds_per_target": args.seconds,
                          "targets": [{k: v for k, v in r.items() if k not in ("error", "inputs")} for r in results]}))
    else:
        for r in results:
            print(f"{r['target']:<14} {r['executions']:>9} runs in {r['seconds']:>6}s  "
                  f"{len(r['crashes'])} new crash(es) {' '.join(r['crashes'])}")  # type: ignore[arg-type]
    return 1 if any(r["crashes"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
