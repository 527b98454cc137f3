"""Run one fuzz target under atheris: ``python -m bench.fuzz.run_target NAME [libFuzzer options] [CORPUS…]``.

Kizuna's modules are instrumented for coverage on import; libFuzzer's options pass through
(``-max_total_time=N``, ``-artifact_prefix=DIR/``, ``-runs=N``), and a crash is written where
``-artifact_prefix`` points.
"""

from __future__ import annotations

import sys

import atheris


def main() -> None:
    name, rest = sys.argv[1], sys.argv[2:]
    from bench.fuzz.targets import INSTRUMENTED, TARGETS

    target = TARGETS[name]
    with atheris.instrument_imports(include=INSTRUMENTED.get(name, ["kizuna"])):
        target(b"")  # imports, instrumented, the parser modules this target reaches
    atheris.Setup([sys.argv[0], *rest], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
