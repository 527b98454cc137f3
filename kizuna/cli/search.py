"""``kizuna search``: full-text search over what a chosen principal may see.

Thin: `Node.search` (core/search.py) passes every result through the same visibility check as TAXII,
matches the words against the principal's own copy and audits what it served.
"""

from __future__ import annotations

import dataclasses

import click

from kizuna.cli.common import TLP_LEVEL_NAMES, CliError, Moment, aligned, emit, json_option, node_of, token_id_type
from kizuna.core import browse
from kizuna.core.search import MAX_LIMIT, SearchFilters, SearchHit
from kizuna.federation.state import FederationState
from kizuna.stix.search_text import query_terms, snippet

_WIDTH = 48


def _short(text: str | None) -> str:
    text = " ".join((text or "-").split())
    return text if len(text) <= _WIDTH else text[: _WIDTH - 1] + "…"


def _match(hit: SearchHit, words: str) -> str:
    """The snippet cut to the column around the first matched word, so the column shows it."""
    terms = query_terms(words)
    text = " ".join(hit.snippet.split())
    if isinstance(terms, str) or len(text) <= _WIDTH:
        return _short(text)
    return snippet(text, terms, _WIDTH - 2)  # room for the two ellipses it may add


def _table(hits: list[SearchHit], collections: dict[str, str], words: str) -> list[str]:
    header = ("TYPE", "TLP", "COLLECTION", "NAME", "MATCH", "ID")
    lines = [header] + [
        (hit.type, hit.tlp or "-", collections.get(hit.collection, hit.collection), _short(hit.name),
         _match(hit, words), hit.id)
        for hit in hits
    ]
    return aligned(lines)


@click.command("search")
@click.argument("words")
@click.option("--as-token-id", default=None, metavar="ID", type=token_id_type,
              help="Search as this token, with its rights (see `kizuna tokens list`).")
@click.option("--as-org", default=None, metavar="NAME",
              help="Search as this organisation, over every collection; markings and its agreements still "
                   "decide what it finds. Default: the node's own organisation.")
@click.option("--collection", "-c", "collections", multiple=True,
              help="Only this collection, id or alias (repeatable).")
@click.option("--type", "types", multiple=True, help="Only this STIX type (repeatable).")
@click.option("--tlp", multiple=True, type=click.Choice([*TLP_LEVEL_NAMES, "none"], case_sensitive=False),
              help="Only this TLP level: clear, green, amber, amber+strict, red or none (repeatable).")
@click.option("--producer", "producers", multiple=True,
              help="Only objects of this producer: an organisation name or identity id (repeatable).")
@click.option("--partner", default=None, help="Only objects received from this federation partner.")
@click.option("--added-from", type=Moment(micros=True), default=None, metavar="WHEN",
              help="Only objects added at or after this moment (a date is midnight UTC at its start).")
@click.option("--added-before", type=Moment(micros=True), default=None, metavar="WHEN",
              help="Only objects added before this moment (a date is midnight UTC at its start).")
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), default=20, show_default=True,
              help="At most this many results per page.")
@click.option("--next", "next_", default=None, metavar="CURSOR",
              help="Continue with the page this cursor names (printed when there is more).")
@json_option
@click.pass_context
def search(ctx: click.Context, words: str, as_token_id: str | None, as_org: str | None,
           collections: tuple[str, ...], types: tuple[str, ...], tlp: tuple[str, ...], producers: tuple[str, ...],
           partner: str | None, added_from: int | None, added_before: int | None, limit: int, next_: str | None,
           as_json: bool) -> None:
    """Find objects whose names, descriptions, patterns or translations hold every one of WORDS, as a
    chosen principal sees them (same rules as TAXII; newest first)."""
    node = node_of(ctx)
    acting = browse.acting_as(node, as_token_id, as_org)
    if partner is not None and partner not in FederationState(node.store).partner_names():
        raise CliError(f"no partner {partner!r}; `kizuna partners list` shows them", code="not-found")
    filters = SearchFilters(collections, types, tlp, producers, partner, added_from, added_before)
    results = node.search(acting.principal, words, filters, limit, next_)
    count = f"{results.count}" if results.count_exact else f"at least {results.count}"
    if as_json:
        emit(True, {"count": results.count, "count_exact": results.count_exact, "next": results.next,
                    "results": [dataclasses.asdict(hit) for hit in results.hits]}, "")
        return
    if not results.hits:
        emit(False, None, f"Nothing found for {words!r} as {acting.described}.")
        return
    names = {c.id: c.alias or c.title for c in node.store.list_collections()}
    more = [f"More: repeat the command with --next {results.next}"] if results.next else []
    noun = "result" if count == "1" else "results"
    emit(False, None, "\n".join([*_table(results.hits, names, words), f"{count} {noun} as {acting.described}.", *more]))


def register(group: click.Group) -> None:
    group.add_command(search)
