"""The Games day of ``kizuna demo --games``: an operation a newcomer can open in the console at once.

One node plays the host nation's room: an operation with two partners (the organising committee's SOC
and a national CERT), protected assets with their lookalike domains, what the partners shared during
the day (a phishing indicator on a lookalike of the ticketing domain, a sighting of it, an indicator
inside a protected range), the host's own DNS log hit on the lookalike, three incidents in different
states, and a shift report in English and Japanese. The partners' objects are stored as their nodes
would send them (their identity as producer, the operation's marking), through the node's ingest, so
every page reads them through the usual visibility check. Running it again changes nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from kizuna.core.node import Node
from kizuna.ops.assets import add_assets
from kizuna.ops.incidents import add_incident, link_incident, update_incident
from kizuna.ops.lookalikes import lookalikes_of
from kizuna.ops.reading import stix_now
from kizuna.ops.records import Operation, load_all
from kizuna.ops.report import Translate, shift_report
from kizuna.ops.sightings import promote, record_log_hits
from kizuna.ops.workspace import create_operation
from kizuna.policy.tlp import TlpLevel, oasis_id
from kizuna.stix.timestamps import now_micros

NAME, SLUG = "Games 2027", "games-2027"
TICKETS = "tickets.games2027.example"
PARTNERS = (("Games Organising Committee SOC", "JPN"), ("JPCERT/CC", "JPN"))


def _partner_objects(soc: str, cert: str, lookalike: str) -> list[dict[str, Any]]:
    now = stix_now()
    amber = [oasis_id(TlpLevel.AMBER)]
    phish = {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": now,
             "modified": now, "valid_from": now, "name": f"Ticket phishing on {lookalike}",
             "description": "Phishing mail sends visitors to a copy of the ticketing site.",
             "indicator_types": ["malicious-activity"], "pattern_type": "stix",
             "pattern": f"[url:value = 'https://{lookalike}/buy']", "created_by_ref": soc,
             "object_marking_refs": amber}
    scan = {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": now,
            "modified": now, "valid_from": now, "name": "Scanner inside the venue network",
            "indicator_types": ["anomalous-activity"], "pattern_type": "stix",
            "pattern": "[ipv4-addr:value = '198.51.100.77']", "created_by_ref": cert, "object_marking_refs": amber}
    sighting = {"type": "sighting", "spec_version": "2.1", "id": f"sighting--{uuid.uuid4()}", "created": now,
                "modified": now, "sighting_of_ref": phish["id"], "count": 42, "created_by_ref": cert,
                "object_marking_refs": amber}
    return [phish, scan, sighting]


def load_games(node: Node, translate_ja: Translate) -> Operation:
    """Create the Games day in ``node`` (once) and return its operation."""
    existing = load_all(node.store).get(SLUG)
    if existing is not None:
        return existing
    ids = {}
    for name, country in PARTNERS:
        found = node.store.get_organisation(name)
        ids[name] = found.id if found is not None else node.create_organisation(name, country)["id"]
    today = dt.datetime.now(dt.UTC).date()
    operation, _ = create_operation(node, NAME, str(today - dt.timedelta(days=3)),
                                    str(today + dt.timedelta(days=14)), [name for name, _ in PARTNERS])
    add_assets(node, operation, [("domain", "games2027.example"), ("domain", TICKETS),
                                 ("cidr", "198.51.100.0/24"), ("url", f"https://{TICKETS}/buy"),
                                 ("identity", "Games Chief Executive")])
    lookalike = sorted(d for d, fuzzer in lookalikes_of(TICKETS).items() if fuzzer == "homoglyph")[0]
    soc, cert = (ids[name] for name, _ in PARTNERS)
    shared = _partner_objects(soc, cert, lookalike)
    node.import_objects(node.find_collection(operation.collections["intel"]), shared)
    record_log_hits(node, operation, [("domain-name", lookalike, now_micros() / 1_000_000)])
    promoted = promote(node, operation, lookalike)
    phishing = add_incident(node, operation, "Phishing wave on a ticketing lookalike",
                            "Visitors report mail linking to a copy of the ticketing site.",
                            assign=PARTNERS[0][0], determination="successful-attempt")
    update_incident(node, operation, phishing["id"], "investigating", None)
    link_incident(node, operation, phishing["id"], [shared[0]["id"], promoted["id"]])
    ddos = add_incident(node, operation, "Traffic flood on the broadcast site", assign=PARTNERS[1][0],
                        determination="blocked")
    update_incident(node, operation, ddos["id"], "contained", None)
    add_incident(node, operation, "Credential stuffing on the ticketing accounts")
    day_start = now_micros() - 24 * 3600 * 1_000_000
    shift_report(node, operation, day_start)
    shift_report(node, operation, day_start, "ja", translate_ja)
    return operation
