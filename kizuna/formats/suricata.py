"""Suricata rules for the network IOCs of a feed.

Per IOC: an address or block gets a rule for traffic to it and one for traffic from it; a domain
(and its subdomains) gets rules on ``dns.query``, ``tls.sni`` and ``http.host``; a URL gets an HTTP
rule on host and exact raw URI (an ``https`` URL only matches where Suricata sees decrypted HTTP); a
JA3 fingerprint gets a ``ja3.hash`` rule. Names are matched in IDNA A-labels and a URL's non-ASCII text
percent-encoded as UTF-8, as clients send them (`iocs.wire_form`): the raw URI never holds UTF-8 bytes.
Hashes and e-mail addresses have no rule of their own and are counted as left out.

An indicator whose pattern is a Snort or Suricata rule (``pattern_type`` ``snort``/``suricata``, e.g. a
MISP ``snort`` attribute) goes into the file as its partner wrote it, with four changes:

* its ``sid`` and ``rev`` are replaced as above (two partners' rules may share a sid; a rule's own sid and
  ``gid`` are kept as ``kizuna_source_sid`` / ``kizuna_source_gid`` metadata), and Kizuna's metadata is added;
* a rule without ``classtype`` gets the feed's;
* its action becomes ``alert``: a shared ``pass`` rule would silence the node's own rules and a ``drop``
  rule would block traffic on a partner's word (each change is counted in the report);
* a rule using a keyword that acts on the sensor beyond an alert (scripts, files, datasets) is left
  out with the reason, as is a line that is no rule. A commented-out rule stays out.

An IOC several indicators name gets its rules once, from the first of them (each hit would otherwise
alert once per indicator). ``sid`` is derived from the indicator id, the IOC and the rule's variant, so it
stays the same from one export to the next; ``rev`` is ``modified`` in seconds since the epoch, so a new version of the
indicator raises it. Every content is written with the bytes Suricata treats specially hex-escaped,
so no partner-supplied value can close the option or the rule.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, Final
from urllib.parse import urlsplit

from suricataparser import parse_rule
from suricataparser.exceptions import RuleParseException
from suricataparser.rule import Metadata, Option, Rule

from kizuna.formats.base import ConversionReport, Loss
from kizuna.formats.feeds import DEFAULT_OPTIONS, RULE, FeedOptions, on_the_wire, select
from kizuna.formats.iocs import DOMAIN, IPV4, IPV6, JA3, URL, to_ascii_domain
from kizuna.stix.timestamps import parse_timestamp

SID_BASE: Final = 1_000_000_000
SID_SPAN: Final = 3_000_000_000  # sids stay below 2**32
# Bytes written as |hex| inside content: Suricata's own specials, and those suricata-check asks for.
_ESCAPED: Final = frozenset(b':; "\'{|\\/`$()')
#: The pattern types whose rules go into the file whole.
RULE_TYPES: Final = ("snort", "suricata")
#: Keywords of a shared rule that make the sensor run a script or read and write files: such a rule is left out.
_SENSOR_ACTIONS: Final = frozenset({"lua", "luajit", "dataset", "datarep", "filestore", "iprep"})
_KEYWORD: Final = re.compile(r"[a-z0-9_.]+", re.ASCII | re.IGNORECASE)
#: Options of a shared rule that Kizuna writes itself.
_REPLACED: Final = frozenset({"sid", "rev", "gid"})


def content(value: str) -> str:
    """A ``content`` argument (with quotes) matching the UTF-8 bytes of ``value`` exactly."""
    out: list[str] = []
    hex_run: list[str] = []
    for byte in value.encode("utf-8"):
        if byte in _ESCAPED or byte < 0x21 or byte > 0x7E:
            hex_run.append(f"{byte:02x}")
            continue
        if hex_run:
            out.append("|" + " ".join(hex_run) + "|")
            hex_run = []
        out.append(chr(byte))
    if hex_run:
        out.append("|" + " ".join(hex_run) + "|")
    return '"' + "".join(out) + '"'


def _msg_value(value: str) -> str:
    # Spaced dots keep the name from being a clickable link or a lookup in the alert pipeline.
    return "".join(c for c in value if c.isalnum() or c in ".-_:/").replace(".", " .")


def stable_sid(key: str) -> int:
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return SID_BASE + int.from_bytes(digest, "big") % SID_SPAN


def _date(stamp: str) -> str:
    return stamp[:10].replace("-", "_")


def _rules(kind: str, value: str) -> list[tuple[str, str, str]]:
    """(variant, rule header, detection options) of the rules for one IOC; empty when it has none."""
    if kind in (IPV4, IPV6):
        shown = _msg_value(value)
        return [
            ("dst", f"alert ip $HOME_NET any -> [{value}] any",
             f'msg:"KIZUNA IOC Traffic to listed address {shown}"; target:src_ip;'),
            ("src", f"alert ip [{value}] any -> $HOME_NET any",
             f'msg:"KIZUNA IOC Traffic from listed address {shown}"; target:dest_ip;'),
        ]
    if kind == DOMAIN:
        name = to_ascii_domain(value)
        shown = _msg_value(name)
        dotted = content("." + name)
        return [
            ("dns", "alert dns $HOME_NET any -> any any",
             f'msg:"KIZUNA IOC DNS query for listed domain {shown}"; dns.query; dotprefix; content:{dotted}; '
             "nocase; endswith;"),
            ("sni", "alert tls $HOME_NET any -> $EXTERNAL_NET any",
             f'msg:"KIZUNA IOC TLS SNI of listed domain {shown}"; flow:established,to_server; tls.sni; dotprefix; '
             f"content:{dotted}; nocase; endswith;"),
            ("host", "alert http $HOME_NET any -> $EXTERNAL_NET any",
             f'msg:"KIZUNA IOC HTTP Host of listed domain {shown}"; flow:established,to_server; http.host; '
             f"dotprefix; content:{dotted}; endswith;"),
        ]
    if kind == URL:
        try:
            parts = urlsplit(value)
        except ValueError:  # e.g. a lone ']' in the authority, which urlsplit takes for a broken IPv6 host
            return []
        # The URL's check (formats/iocs.py) reads its host without trailing dots; so does a Host header.
        hostname = (parts.hostname or "").rstrip(".")
        if parts.scheme.lower() not in ("http", "https") or not hostname:
            return []
        try:
            host = to_ascii_domain(hostname) if not hostname.replace(".", "").isdigit() else hostname
        except UnicodeError:  # a name IDNA cannot write (the URL's check takes it as it is written)
            return []
        uri = value.split("://", 1)[1]
        uri = uri[len(parts.netloc):] or "/"
        uri = uri.split("#", 1)[0]
        return [
            ("url", "alert http $HOME_NET any -> $EXTERNAL_NET any",
             f'msg:"KIZUNA IOC HTTP request for listed URL on {_msg_value(host)}"; flow:established,to_server; '
             f"http.host; content:{content(host.lower())}; startswith; endswith; "
             f"http.uri.raw; content:{content(uri)}; fast_pattern; startswith; endswith;"),
        ]
    if kind == JA3:
        return [
            ("ja3", "alert tls $HOME_NET any -> $EXTERNAL_NET any",
             f'msg:"KIZUNA IOC TLS client with listed JA3 fingerprint {value}"; flow:established,to_server; '
             f"ja3.hash; content:{content(value)};"),
        ]
    return []


def write_suricata(
    objects: Iterable[dict[str, Any] | bytes | str],
    *,
    options: FeedOptions = DEFAULT_OPTIONS,
    report: ConversionReport | None = None,
    classtype: str = "bad-unknown",
) -> Iterator[str]:
    """Lines of a Suricata rules file, one rule a line."""
    used: set[int] = set()
    written: set[tuple[str, str]] = set()  # each IOC once, as the other feeds write each value once
    unsupported: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    for selected in select(objects, options, report, rule_types=RULE_TYPES):
        o = selected.indicator
        ident = str(o.get("id", ""))
        modified = str(o.get("modified") or o.get("created") or "1970-01-01T00:00:00Z")
        try:
            rev = max(1, parse_timestamp(modified) // 1_000_000 % 2**32)
        except ValueError:
            rev = 1
        created = _date(str(o.get("created") or modified))
        stamps = f"created_at {created}, updated_at {_date(modified)}"
        for kind, value in selected.terms:
            if kind == RULE:
                for rule_key, rule in _shared_rules(ident, value, actions, report):
                    sid = _free_sid(stable_sid(f"{ident}|rule|{rule_key}"), used)
                    yield _rewritten(rule, classtype, sid, rev, f"kizuna_indicator {ident}, {stamps}") + "\n"
                continue
            # Suricata sees names in A-labels and a request's path percent-encoded, as sent: rules match that
            wire = value if value.isascii() else on_the_wire(kind, value, ident, report)
            if wire is None:
                continue
            if (kind, wire) in written:
                continue  # another indicator's rules already watch for it: one alert, not one per indicator
            rules = _rules(kind, wire)
            if not rules:
                unsupported[kind] += 1
                continue
            written.add((kind, wire))
            for variant, header, body in rules:
                sid = stable_sid(f"{ident}|{kind}|{value}|{variant}")
                if sid in used:  # a collision (rare); inline, as this loop writes millions of rules
                    sid = _free_sid(sid, used)
                used.add(sid)
                yield (f"{header} ({body} classtype:{classtype}; sid:{sid}; rev:{rev}; "
                       f"metadata:kizuna_indicator {ident}, {stamps};)\n")
    if report is not None:
        for kind, count in sorted(unsupported.items()):
            report.warnings.append(f"{count} {kind} value(s) have no Suricata rule and were left out")
        for action, count in sorted(actions.items()):
            report.warnings.append(f"{count} shared rule(s) with action {action} written as alert")


def _free_sid(sid: int, used: set[int]) -> int:
    """``sid``, or on a collision (rare) the next free one, kept stable by input order; marked used."""
    while sid in used:
        sid = SID_BASE + (sid - SID_BASE + 1) % SID_SPAN
    used.add(sid)
    return sid


def _shared_rules(ident: str, text: str, actions: Counter[str],
                  report: ConversionReport | None) -> Iterator[tuple[str, Rule]]:
    """(key for its sid, rule to write) for each rule in a shared rule pattern: one rule a line, blank
    lines and comments (commented-out rules too) skipped; the rest left out with a loss."""
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        rule = _read_rule(line)
        reason = None
        if rule is None:
            reason = "not a Suricata rule"
        elif (acting := sorted({o.name for o in rule.options} & _SENSOR_ACTIONS)):
            reason = f"uses {', '.join(acting)}, which acts on the sensor beyond an alert"
        if reason is not None or rule is None:
            if report is not None:
                report.losses.append(Loss(ident, "pattern", line, f"line {number}: {reason}"))
            continue
        if rule.action != "alert":
            actions[rule.action] += 1
        # the partner's own sid keys ours, so a rule keeps its sid when others are added or removed around it
        yield (str(rule.sid) if rule.sid is not None else f"line {number}"), rule


def _read_rule(line: str) -> Rule | None:
    """The rule on ``line``, or None when it is none: suricataparser's reading (it splits options at each
    unescaped ``;``, as Suricata does), and a header of protocol, source, ports, direction and destination
    and options of a keyword (of keyword characters) and, after a colon, a value, so nothing else can pass
    for a rule."""
    try:
        rule = parse_rule(line)
    except (RuleParseException, ValueError, IndexError, AttributeError, TypeError):  # e.g. "sid:x;", "msg;"
        return None
    if rule is None or not rule.enabled:
        return None
    header = rule.header.split()
    if len(header) != 6 or header[3] not in ("->", "<>", "=>"):
        return None
    # (an option with nothing after its colon would be written back without the colon: another rule)
    if not all(_KEYWORD.fullmatch(option.name) and option.value != "" for option in rule.options):
        return None
    return rule


def _rewritten(rule: Rule, classtype: str, sid: int, rev: int, metadata: str) -> str:
    """``rule`` as an alert with Kizuna's sid, rev and metadata (the partner's sid and gid kept in it)."""
    kept = [o for o in rule.options if o.name not in _REPLACED]
    if not any(o.name == "classtype" for o in kept):
        kept.append(Option("classtype", classtype))
    source = [f"kizuna_source_{o.name} {o.value}" for o in rule.options if o.name in ("sid", "gid")]
    kept += [Option("sid", str(sid)), Option("rev", str(rev)), Option("metadata", Metadata([*source, metadata]))]
    return str(Rule(True, "alert", rule.header, kept))
