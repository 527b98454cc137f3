"""Zeek Intel-framework files as STIX indicators, so a Zeek shop can try Kizuna on its own feeds."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from kizuna.detect.canonical import domain_value, ip_value
from kizuna.stix.patterns import stix_pattern_problem

_NAMESPACE = uuid.UUID("0b7d7f5e-5c43-4a8b-9a55-2d0f4a8e1c17")
_HASH_NAMES = {32: "MD5", 40: "'SHA-1'", 64: "'SHA-256'"}


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _canonical(indicator: str, kind: str) -> str:
    """The value as Kizuna's IOC importer stores it, which is also the form log mappings give a log's
    values (kizuna/detect/canonical.py): a domain in lower case without the final dot, an IPv6 address
    compressed. An intel file written `Evil.COM` then matches the `evil.com` a log names."""
    if kind == "Intel::DOMAIN":
        return domain_value(indicator)
    if kind == "Intel::ADDR":
        return ip_value(indicator)
    if kind == "Intel::SUBNET":
        try:
            return str(ipaddress.ip_network(indicator, strict=False))
        except ValueError:
            return indicator
    return indicator


def _pattern(indicator: str, kind: str) -> str | None:
    if kind == "Intel::ADDR":
        object_type = "ipv6-addr" if ":" in indicator else "ipv4-addr"
        return f"[{object_type}:value = {_quote(indicator)}]"
    if kind == "Intel::SUBNET":
        object_type = "ipv6-addr" if ":" in indicator else "ipv4-addr"
        return f"[{object_type}:value ISSUBSET {_quote(indicator)}]"
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


def _problem(indicator: str, kind: str) -> str | None:
    """Why a row's value cannot be an indicator of its kind, or None."""
    if not indicator:
        return "the indicator is empty"
    if kind not in _READ:
        return f"indicator_type {kind or '(none)'!r} is not one Kizuna reads ({', '.join(sorted(_READ))})"
    try:
        if kind == "Intel::ADDR":
            ipaddress.ip_address(indicator)
        elif kind == "Intel::SUBNET":
            ipaddress.ip_network(indicator, strict=False)
    except ValueError:
        return f"{indicator!r} is not an {'address' if kind == 'Intel::ADDR' else 'address range'}"
    if kind == "Intel::FILE_HASH" and len(indicator) not in _HASH_NAMES:
        return f"{indicator!r} is not an MD5, SHA-1 or SHA-256 hash"
    return None


_READ = ("Intel::ADDR", "Intel::SUBNET", "Intel::DOMAIN", "Intel::URL", "Intel::FILE_HASH", "Intel::EMAIL")


def zeek_intel_indicators(
    lines: Iterable[str], *, created: str = "1970-01-01T00:00:00.000Z",
    skipped: list[tuple[int, str]] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one STIX indicator per row of a kind Kizuna reads (ADDR, SUBNET, DOMAIN, URL, FILE_HASH, EMAIL) whose
    value makes a valid pattern; every other row is told to ``skipped`` as (line number, why).

    Intel files carry no validity period, so the indicators are valid from the epoch on.
    """
    fields: list[str] = []
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
            continue
        if not line or line.startswith("#"):
            continue
        if not fields:
            if skipped is not None:
                skipped.append((number, "a row before the #fields line that names its columns"))
            continue
        row = dict(zip(fields, line.split("\t"), strict=False))
        kind = row.get("indicator_type", "")
        indicator = _canonical(row.get("indicator", "").strip(), kind)
        problem = _problem(indicator, kind)
        pattern = _pattern(indicator, kind) if problem is None else None
        if pattern is not None and stix_pattern_problem(pattern) is not None:
            problem = f"{indicator!r} makes no valid pattern"
        if pattern is None or problem is not None:
            if skipped is not None:
                skipped.append((number, problem or f"{indicator!r} makes no valid pattern"))
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
