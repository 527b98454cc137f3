"""Import (operators): upload a file into a collection the token may write, and read the import report.

A STIX bundle, a MISP event (JSON) or a CSV/text list of IOCs: the format is detected and converted as
``kizuna import`` does it. The conversion lives in ``kizuna/formats/upload.py``; this room may not
import that one (they are siblings), so ``kizuna/app.py`` hands it over as ``app.state.importer``.
Uploads are capped at ``UPLOAD_LIMIT`` (larger files: the CLI, which streams). The report is the
CLI's: counts, objects refused with their line, input lines rejected with their line, and what a
conversion lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from starlette.responses import Response

from kizuna.core.errors import KizunaError
from kizuna.core.node import Node
from kizuna.core.principal import Principal
from kizuna.store.base import Collection
from kizuna.web.page import Visit

UPLOAD_LIMIT: Final = 16 * 1024 * 1024
#: TLP levels an IOC list's indicators may be marked with (``kizuna import --tlp``); labels as FIRST writes them.
LEVELS: Final = (("clear", "TLP:CLEAR"), ("green", "TLP:GREEN"), ("amber", "TLP:AMBER"),
                 ("amber+strict", "TLP:AMBER+STRICT"), ("red", "TLP:RED"))

Importer = Callable[[Node, Principal, Collection, bytes, str, str | None], dict[str, Any]]


def _writable(visit: Visit) -> list[Collection]:
    return [c for c in visit.node.store.list_collections() if visit.principal.can_write(c)]


def import_page(visit: Visit) -> Response:
    return visit.render("import.html", collections=_writable(visit), levels=LEVELS, draft={}, problem=None,
                        report=None)


def import_submit(visit: Visit) -> Response:
    collections = _writable(visit)
    chosen = next((c for c in collections if c.id == visit.form.get("collection")), None)
    tlp = visit.form.get("tlp") or None
    draft = {"collection": visit.form.get("collection"), "tlp": tlp}
    upload = visit.files.get("file")
    problem = None
    if chosen is None:
        problem = visit.gettext("Choose a collection this token may write to.")
    elif upload is None or not upload[1]:
        problem = visit.gettext("Choose a file to import.")
    elif tlp is not None and tlp not in dict(LEVELS):
        problem = visit.gettext("Choose a TLP level from the list.")
    report = None
    if problem is None and chosen is not None and upload is not None:
        importer: Importer = visit.request.app.state.importer
        try:
            report = importer(visit.node, visit.principal, chosen, upload[1], upload[0], tlp)
        except KizunaError as exc:
            problem = exc.description
    return visit.render("import.html", status=422 if problem else 200, collections=collections, levels=LEVELS,
                        draft=draft, problem=problem, report=report, chosen=chosen)
