"""Interchange with the tools partners already run: MISP, IOC lists, IDS rules, blocklists.

Readers turn a foreign file into STIX 2.1 objects plus a report of what did not survive; writers turn
the objects a caller may see into a foreign format. Neither touches the store: `kizuna import`,
`kizuna export` and the feed endpoints pass objects through the node's ingest and visibility check.
"""

from kizuna.formats.deferred_iri import defer_iri_grammar

defer_iri_grammar()  # before any reader or writer imports misp-stix, PyMISP or stix2-elevator
