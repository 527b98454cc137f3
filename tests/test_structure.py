"""The package's layering holds: the import-linter contracts in pyproject.toml are kept.

The contracts forbid what once existed here (the CLI modules importing each other, the TAXII app
and the detection/federation routes importing one another, detect/engine <-> detect/fast) and any
import that points up the layers, so a regression shows here and not only in CI's lint step.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept() -> None:
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert command, "import-linter is a test dependency (pip install -e '.[test]')"
    result = subprocess.run([command], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
