"""Defer rfc3987-syntax's grammar build until an IRI is actually checked.

misp-stix imports PyMISP, PyMISP imports pymispwarninglists, and that imports jsonschema. jsonschema registers
its ``iri`` format check from rfc3987-syntax when that package is installed (stix2-elevator brings it, through
stix2-validator's ``jsonschema[format-nongpl]``), and rfc3987-syntax builds its Lark grammars when it is
imported: 1.3-1.9 s on these machines, paid by every ``kizuna import`` of a MISP event and every MISP export
before the first byte is read, for a check no Kizuna path asks for. A stand-in module answers the import
and loads the real one on the first call, so a validator that does check an IRI gets the same answer.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

_NAME = "rfc3987_syntax"
_lock = threading.Lock()


class _Deferred(types.ModuleType):
    """``rfc3987_syntax`` until something other than the import touches it."""

    def __init__(self) -> None:
        super().__init__(_NAME)
        self._real: types.ModuleType | None = None

    def load(self) -> types.ModuleType:
        with _lock:
            if self._real is None:
                if sys.modules.get(_NAME) is self:
                    del sys.modules[_NAME]
                self._real = importlib.import_module(_NAME)
            return self._real

    def is_valid_syntax(self, *args: Any, **kwargs: Any) -> Any:
        return self.load().is_valid_syntax(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.load(), name)


def defer_iri_grammar() -> None:
    """Put the stand-in in place, unless jsonschema or rfc3987-syntax is imported already (or absent)."""
    if _NAME in sys.modules or "jsonschema" in sys.modules or importlib.util.find_spec(_NAME) is None:
        return
    sys.modules[_NAME] = _Deferred()
