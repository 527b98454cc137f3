"""Zeek Intel-framework files as STIX indicators, so a Zeek shop can try Kizuna on its own feeds."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from kizuna.detect.mappings import domain_value, ip_value
from kizuna.stix.patterns import stix_pattern_problem

_NAMESPACE = uuid.UUID("0b7d7f5e-5c43-4a8b-9a55-2d0f4a8e1c17")
_HASH_NAMES = {32: "MD5", 40: "'SHA-1'", 64: "'SHA-256'"}


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _canonical(indicator: str, kind: str) -> str:
    """The value as Kizuna's IOC importer stores it, which is also the form log mappings give a log's
    values (kizuna/detect/mappings.py): a domain in lower case without the final dot, an IPv6 address
    compressed. An intel file written `Evil.COM` then matches the `evil.com` a log names."""
    if kind == "Intel::DOMAIN":
        return domain_value(indicator)
    if kind == "Intel::ADDR":
        return ip_value(indicator)
    return indicator


def _pattern(indicator: str, kind: str) -> str | None:
    if kind == "Intel::ADDR":
        object_type = "ipv6-addr" if ":" in indicator else "ipv4-addr"
        return f"[{object_type}:value = {_quote(indicator)}]"
    if kind == "Intel::DOMAIN":
        return f"[domain-name:value = {_quote(indicator)}]"
    if kind == "Intel::URL":
        url = indicator if "://" in indicator else f"http://{indicator}"
        return f"[url:value = {_quote(url)}]"
    if kind == "Intel::FILE_HASH" and len(indicator) in _HASH_NAMES:
        return f"[file:hashes.{_HASH_NAMES[len(indicator)]} = {_quote(indicator.lower())}]"
    if kind == "Intel::EMAIL":
        return f"[email-addr:value = {_quote(indicator)}]"
    return None


def zeek_intel_indicators(
    lines: Iterable[str], *, created: str = "1970-01-01T00:00:00.000Z"
) -> Iterator[dict[str, Any]]:
    """Yield one STIX indicator per supported row (ADDR, DOMAIN, URL, FILE_HASH, EMAIL) whose value makes a
    valid pattern.

    Intel files carry no validity period, so the indicators are valid from the epoch on.
    """
    fields: list[str] = []
    for line in lines:
        line = line.rstrip("\r\n")
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
            continue
        if not line or line.startswith("#") or not fields:
            continue
        row = dict(zip(fields, line.split("\t"), strict=False))
        kind = row.get("indicator_type", "")
        indicator = _canonical(row.get("indicator", ""), kind)
        pattern = _pattern(indicator, kind)
        if pattern is None or stix_pattern_problem(pattern) is not None:
            # An unsupported kind, or a value its kind cannot hold (a "hash" that is not hex): no indicator
            # ingest would store.
            continue
        source = row.get("meta.source", "")
        yield {
            "type": "indicator",
            "spec_version": "2.1",
            "id": f"indicator--{uuid.uuid5(_NAMESPACE, kind + '|' + indicator)}",
            "created": created,
            "modified": created,
            "name": f"{kind.removeprefix('Intel::')} {indicator}",
            "description": row.get("meta.desc", "") or source,
            "indicator_types": ["malicious-activity"],
            "pattern": pattern,
            "pattern_type": "stix",
            "valid_from": created,
        }
