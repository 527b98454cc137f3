"""One uploaded file into a collection: the console's Import page (kizuna/web/imports.py).

The same detection and converters as ``kizuna import`` (``detect_format``, ``convert``, Kizuna's
default warninglists), for a file already in memory: the console caps an upload, so a STIX 2.1 bundle
is parsed whole rather than streamed. The objects are written as the signed-in operator, through
``Node.add_objects`` (its write right on the collection is checked, and the write is audited under
its token), and the report is kept as an ``import-report`` audit record like the CLI's.

The web room may not import this room (they are siblings), so ``kizuna/app.py`` hands
:func:`import_upload` to the console as ``app.state.importer``.
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any, Final

from kizuna.core.errors import Unprocessable
from kizuna.core.messages import N_, Message
from kizuna.core.node import Node
from kizuna.core.principal import Principal
from kizuna.formats.base import FormatError
from kizuna.formats.detect_format import STIX, Converted, IocOptions, convert, detect_format
from kizuna.formats.warninglists import DEFAULT_LISTS, Warninglists, load_warninglists
from kizuna.stix.bundle_stream import BundleSyntaxError, iter_bundle_objects
from kizuna.store.base import Collection

AUDIT_KIND: Final = "import-report"  # the kind `kizuna import` records, so `audit export --kind` finds both
#: Entries per list kept in the audit record (the page shows all of them).
AUDIT_LIMIT: Final = 10_000


@lru_cache(maxsize=1)
def _default_lists() -> Warninglists:
    return load_warninglists(DEFAULT_LISTS)


def import_upload(node: Node, principal: Principal, collection: Collection, data: bytes, name: str,
                  tlp: str | None = None) -> dict[str, Any]:
    """Import ``data`` (a file called ``name``) into ``collection`` as ``principal``; the report.

    ``tlp`` (clear, green, amber, amber+strict, red) marks the indicators of an IOC list, as
    ``kizuna import --tlp`` does. A file that cannot be read as a whole stores nothing and raises
    :class:`Unprocessable` naming ``name:line``.
    """
    try:
        fmt = detect_format(data[:64 * 1024], name)
        if fmt == STIX:
            report = _stix21(node, principal, collection, data, name)
        else:
            converted = convert(fmt, data, name, ioc=IocOptions(tlp=tlp), warninglists=_default_lists())
            report = _converted(node, principal, collection, converted, name)
    except FormatError as exc:
        if exc.where and exc.where != name:
            raise Unprocessable(Message(N_("%(name)s: %(message)s (%(where)s)"), name=name, message=exc.message,
                                        where=exc.where)) from None
        raise Unprocessable(Message(N_("%(name)s: %(message)s"), name=name, message=exc.message)) from None
    except BundleSyntaxError as exc:
        raise Unprocessable(f"{exc.name}:{exc.line}: {exc.message}; nothing was stored") from None
    report["audit_seq"] = node.audit.record(AUDIT_KIND, principal.key, _audit_body(report)).seq
    return report


def _stix21(node: Node, principal: Principal, collection: Collection, data: bytes, name: str) -> dict[str, Any]:
    # Parsed whole before anything is stored: a syntax error anywhere stores nothing.
    pairs = list(iter_bundle_objects(io.BytesIO(data), name))
    if not pairs:
        raise Unprocessable(f"{name}: no STIX objects to import; expected a bundle, an envelope or a list")
    written = node.add_objects(principal, collection, [obj for _, obj in pairs])
    failures = [{"line": pairs[pos][0], "id": f["id"], "message": f["message"]}
                for pos, f in zip(written.failure_positions, written.failures, strict=True)]
    return _report(name, STIX, collection, written, failures, 0, {"losses": [], "rejected": [], "warnings": []})


def _converted(node: Node, principal: Principal, collection: Collection, converted: Converted,
               name: str) -> dict[str, Any]:
    summary = converted.report.summary()
    objects = converted.report.objects
    if not objects:
        first = summary["rejected"][0]["where"] if summary["rejected"] else name
        raise Unprocessable(Message(N_("%(where)s: nothing usable in this file (%(count)s lines rejected)"),
                                    where=first, count=len(summary["rejected"])))
    written = node.add_objects(principal, collection, objects)
    failures = [{"id": f["id"], "message": f["message"]} for f in written.failures]
    return _report(name, converted.format, collection, written, failures, converted.flagged, summary)


def _report(name: str, fmt: str, collection: Collection, written: Any, failures: list[dict[str, Any]],
            flagged: int, summary: dict[str, Any]) -> dict[str, Any]:
    """The same fields as one source of ``kizuna import --json``."""
    return {"source": name, "format": fmt, "collection": collection.id, "total": written.total,
            "stored": written.success_count - written.duplicate_count, "duplicates": written.duplicate_count,
            "rejected": len(failures), "added_by_node": written.node_added,
            "normalised": written.normalisation_count, "flagged": flagged, "failures": failures,
            "losses": summary["losses"], "rejected_input": summary["rejected"], "warnings": summary["warnings"]}


def _audit_body(report: dict[str, Any]) -> dict[str, Any]:
    kept = dict(report)
    for key in ("failures", "losses", "rejected_input", "warnings"):
        if len(report[key]) > AUDIT_LIMIT:
            kept[key] = report[key][:AUDIT_LIMIT]
            kept[f"{key}_not_kept"] = len(report[key]) - AUDIT_LIMIT
    return {"collection": report["collection"], "sources": [kept], "console": True}
