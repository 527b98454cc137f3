"""TAXII 2.1 media types and content negotiation (§1.6.8, §3.1), and the one header Kizuna adds."""

from __future__ import annotations

from kizuna.core.errors import NotAcceptable, UnsupportedMediaType

TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1"
#: On a page of objects: a digest of the terms the reader reads under (``ViewerPolicy.terms``). A pulling
#: Kizuna node that sees it change reads the collection again from the start, since versions added before
#: the change may have become visible to it (docs/federation.md); other clients ignore it.
TERMS_HEADER = "Kizuna-Terms"


def _media_ranges(header: str) -> list[tuple[str, dict[str, str]]]:
    ranges: list[tuple[str, dict[str, str]]] = []
    for part in header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        params: dict[str, str] = {}
        for piece in pieces[1:]:
            name, _, value = piece.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
        ranges.append((pieces[0].lower(), params))
    return ranges


def _is_taxii21(media: str, params: dict[str, str]) -> bool:
    return media == "application/taxii+json" and params.get("version", "2.1") == "2.1"


def check_accept(header: str | None) -> None:
    """406 unless the client accepts TAXII 2.1 JSON (a missing header means anything)."""
    if header is None or not header.strip():
        return
    for media, params in _media_ranges(header):
        if params.get("q") in ("0", "0.0", "0.00", "0.000"):
            continue
        if _is_taxii21(media, params) or media in ("*/*", "application/*"):
            return
    raise NotAcceptable(
        f"this server answers with {TAXII_MEDIA_TYPE}; send that (or application/taxii+json) in Accept"
    )


def check_content_type(header: str | None) -> None:
    """415 unless the body is declared as a TAXII 2.1 envelope."""
    ranges = _media_ranges(header or "")
    if len(ranges) != 1 or not _is_taxii21(*ranges[0]):
        raise UnsupportedMediaType(
            f"send the envelope with Content-Type: {TAXII_MEDIA_TYPE} (got {header or 'none'!r})"
        )
