"""Partners & sync (operators): each partner's kind, address, last sync, backlog, last error and health.

The same rows as ``kizuna partners list``, read through ``core/partner_health`` (the web room may not
import ``kizuna.federation``, its sibling). Partners are the node's configuration, not objects, so the
page is for operators only (``operators_only``), like the CLI.
"""

from __future__ import annotations

from starlette.responses import Response

from kizuna.core.partner_health import HEALTH_ORDER, partner_health
from kizuna.core.vocab import HEALTH_NAMES, N_
from kizuna.web.page import Visit

#: How each partner kind reads on the page (translated).
KIND_NAMES = {"taxii": N_("TAXII server"), "misp-feed": N_("MISP feed")}


def partners_page(visit: Visit) -> Response:
    rows = sorted(partner_health(visit.node), key=lambda p: (HEALTH_ORDER.index(p.health), p.name))
    return visit.render("partners.html", partners=rows,
                        health_names={k: visit.gettext(v) for k, v in HEALTH_NAMES.items()},
                        kind_names={k: visit.gettext(v) for k, v in KIND_NAMES.items()})
