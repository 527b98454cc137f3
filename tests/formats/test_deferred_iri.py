"""The IRI grammar (rfc3987-syntax, 1.3-1.9 s to build) is built when an IRI is checked, not when a MISP
reader is imported (kizuna/formats/deferred_iri.py); a check still gives the real answer."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import kizuna.formats.misp_in  # misp-stix -> PyMISP -> pymispwarninglists -> jsonschema
assert "jsonschema" in sys.modules
assert "rfc3987_syntax.syntax_helpers" not in sys.modules, "the grammar was built on import"
import jsonschema
checker = jsonschema.FormatChecker()
assert checker.conforms("https://例え.jp/パス?q=1", "iri")
assert not checker.conforms("not an iri", "iri")
assert checker.conforms("../relative", "iri-reference")
assert "rfc3987_syntax.syntax_helpers" in sys.modules
print("ok")
"""


def test_the_iri_grammar_is_built_when_an_iri_is_checked_not_on_import() -> None:
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
