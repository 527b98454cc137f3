"""Snort and Suricata rules shared as indicators go into the Suricata feed as their partner wrote them.

The real rules are the 27 Snort rules of the `snort` attribute in CIRCL's long_event.json (see
tests/fixtures/misp/ATTRIBUTION), converted by the MISP import as any partner's event is.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from suricataparser import parse_rule
from suricataparser.rule import Rule

from kizuna.formats.base import ConversionReport
from kizuna.formats.feeds import FeedOptions
from kizuna.formats.misp_in import read_misp
from kizuna.formats.suricata import write_suricata
from kizuna.policy.tlp import TlpLevel
from kizuna.stix.vocab import NOT_FOR_DETECTION_PROPERTY
from tests.cli.test_export_formats import TLP_AMBER_STRICT
from tests.conftest import imported_with_rejections, kizuna_json
from tests.formats.test_network_feeds import _suricata_check_issues

FIXTURES = Path(__file__).parents[1] / "fixtures" / "misp"
NOW = "2026-12-01T00:00:00Z"
OPTIONS = FeedOptions(now=NOW)
KIZUNA_OPTIONS = {"sid", "rev", "metadata", "classtype", "gid"}


def snort_indicator() -> dict[str, Any]:
    """The indicator of the event's Snort rules, shared for detection (the event has ``to_ids`` off on it)."""
    (found,) = [o for o in read_misp(FIXTURES / "long_event.json").objects
                if o["type"] == "indicator" and o.get("pattern_type") == "snort"]
    assert found.pop(NOT_FOR_DETECTION_PROPERTY) is True
    return found


def shared(pattern: str, **extra: Any) -> dict[str, Any]:
    return {"type": "indicator", "spec_version": "2.1", "id": "indicator--5d0c1fd4-49a8-4b5e-9a4e-2f0d3a1c2b77",
            "created": "2026-11-02T10:00:00.000Z", "modified": "2026-11-03T10:00:00.000Z", "pattern": pattern,
            "pattern_type": "suricata", "valid_from": "2026-11-02T10:00:00Z", **extra}


def metadata(rule: Rule) -> dict[str, str]:
    return dict(item.split(" ", 1) for item in rule.metadata if " " in item)


def partner_options(rule: Rule) -> list[tuple[str, str]]:
    return [(o.name, str(o.value)) for o in rule.options if o.name not in KIZUNA_OPTIONS]


def test_a_partners_snort_rules_go_into_the_file_with_kizuna_sids_and_nothing_else_changed() -> None:
    indicator = snort_indicator()
    sources = [parse_rule(line) for line in indicator["pattern"].splitlines() if line.strip()]
    assert len(sources) == 27 and all(rule is not None for rule in sources)
    report = ConversionReport("suricata")
    written = [parse_rule(line) for line in write_suricata([indicator], options=OPTIONS, report=report)]
    assert len(written) == 27 and report.losses == []
    by_source_sid = {metadata(rule)["kizuna_source_sid"]: rule for rule in written if rule is not None}
    for source in sources:
        assert source is not None
        out = by_source_sid[str(source.sid)]
        assert out.action == "alert" and out.header == source.header and out.msg == source.msg
        assert partner_options(out) == partner_options(source)  # every content, offset, reference in order
        assert metadata(out)["kizuna_indicator"] == indicator["id"]
        assert out.rev == 1467971098  # modified, 2016-07-08T09:44:58Z, in seconds
        assert out.classtype == "bad-unknown"
        # The rewrite adds no suricata-check finding the partner's own rule did not have.
        before = {issue.code for issue in _suricata_check_issues(str(source))}
        after = _suricata_check_issues(str(out))
        assert {i.code for i in after if (i.severity or 0) >= logging.WARNING} <= before, str(out)
    assert len({rule.sid for rule in written if rule is not None}) == 27
    # The same indicator a year on: the same sids, a higher rev.
    later = {**indicator, "modified": "2017-07-08T09:44:58.000Z"}
    again = [parse_rule(line) for line in write_suricata([later], options=OPTIONS)]
    assert [r.sid for r in again if r] == [r.sid for r in written if r]
    assert all(r is not None and r.rev > 1467971098 for r in again)


def test_a_shared_rule_only_ever_alerts_and_never_acts_on_the_sensor() -> None:
    pattern = "\n".join([
        '# alert ip any any -> any any (msg:"commented out"; sid:1;)',
        'drop tcp any any -> $HOME_NET 445 (msg:"drop"; flow:to_server; sid:2;)',
        'pass ip $HOME_NET any -> any any (msg:"silence everything"; gid:3; sid:3;)',
        'alert http any any -> any any (msg:"script"; luajit:steal.lua; sid:4;)',
        'alert dns any any -> any any (msg:"set"; dns.query; dataset:set,seen,type string,save seen.lst; sid:5;)',
        "not a rule at all",
        'alert ip any any -> any any (msg:"bad sid"; sid:five;)',
        "",
        'alert tls any any -> any any (msg:"kept"; tls.sni; content:"evil.example"; classtype:trojan-activity; sid:9;)',
    ])
    report = ConversionReport("suricata")
    written = [parse_rule(line) for line in write_suricata([shared(pattern)], options=OPTIONS, report=report)]
    assert [r.msg if r else None for r in written] == ["drop", "silence everything", "kept"]
    assert all(r is not None and r.action == "alert" for r in written)
    assert metadata(written[1])["kizuna_source_gid"] == "3"  # type: ignore[arg-type]
    assert written[2].classtype == "trojan-activity"  # type: ignore[union-attr]
    assert sorted(report.warnings) == ["1 shared rule(s) with action drop written as alert",
                                       "1 shared rule(s) with action pass written as alert"]
    reasons = {loss.value: loss.reason for loss in report.losses}
    assert reasons == {
        'alert http any any -> any any (msg:"script"; luajit:steal.lua; sid:4;)':
            "line 4: uses luajit, which acts on the sensor beyond an alert",
        'alert dns any any -> any any (msg:"set"; dns.query; dataset:set,seen,type string,save seen.lst; sid:5;)':
            "line 5: uses dataset, which acts on the sensor beyond an alert",
        "not a rule at all": "line 6: not a Suricata rule",
        'alert ip any any -> any any (msg:"bad sid"; sid:five;)': "line 7: not a Suricata rule",
    }


def test_a_shared_rule_passes_the_feeds_limits_like_any_indicator() -> None:
    amber = shared('alert ip any any -> any any (msg:"amber"; sid:1;)', object_marking_refs=[TLP_AMBER_STRICT])
    expired = shared('alert ip any any -> any any (msg:"expired"; sid:2;)', valid_until="2026-11-30T00:00:00Z")
    revoked = shared('alert ip any any -> any any (msg:"revoked"; sid:3;)', revoked=True)
    sure = shared('alert ip any any -> any any (msg:"sure"; sid:4;)', confidence=90)
    unsure = shared('alert ip any any -> any any (msg:"unsure"; sid:5;)', confidence=10)
    snort = {**shared('alert ip any any -> any any (msg:"snort"; sid:6;)'), "pattern_type": "snort"}
    sigma = {**shared("title: not a network rule"), "pattern_type": "sigma"}
    every = [amber, expired, revoked, sure, unsure, snort, sigma]
    msgs = [parse_rule(line).msg for line in write_suricata(every, options=OPTIONS)]  # type: ignore[union-attr]
    assert msgs == ["amber", "sure", "unsure", "snort"]
    limited = FeedOptions(now=NOW, tlp_ceiling=TlpLevel.GREEN, min_confidence=50)
    msgs = [parse_rule(line).msg for line in write_suricata(every, options=limited)]  # type: ignore[union-attr]
    assert msgs == ["sure"]


def _export_rules(tmp_path: Path, event: Path) -> tuple[list[Rule | None], dict[str, Any]]:
    data_dir = tmp_path / "node"
    kizuna_json(data_dir, "init", "--org-name", "NCSC UK", "--country", "GBR")
    kizuna_json(data_dir, "collections", "create", "--title", "Events", "--alias", "events")
    # the event's one broken YARA rule is refused; the rest is stored
    imported_with_rejections(data_dir, str(event), "--collection", "events")
    out = tmp_path / "events.rules"
    summary = kizuna_json(data_dir, "export", "--collection", "events", "--format", "suricata", "-o", str(out))
    return [parse_rule(line) for line in out.read_text().splitlines()], summary


def test_kizuna_export_writes_the_rules_of_an_imported_misp_event_shared_for_detection(tmp_path: Path) -> None:
    document = json.loads((FIXTURES / "long_event.json").read_text(encoding="utf-8"))
    (attribute,) = [a for a in document["Event"]["Attribute"] if a["type"] == "snort"]
    attribute["to_ids"] = True
    event = tmp_path / "long_event_to_ids.json"
    event.write_text(json.dumps(document), encoding="utf-8")
    rules, summary = _export_rules(tmp_path, event)
    shared_sids = {metadata(rule).get("kizuna_source_sid") for rule in rules if rule is not None} - {None}
    assert shared_sids == {str(888016101 + n) for n in range(27)}
    assert all(rule is not None for rule in rules) and len({rule.sid for rule in rules if rule}) == len(rules)
    assert "pattern type is not stix" not in " ".join(summary["warnings"])


def test_rules_shared_with_to_ids_off_stay_out_of_the_file(tmp_path: Path) -> None:
    # As in CIRCL's event: the Snort attribute has to_ids off, which MISP's own IDS exports honour.
    rules, summary = _export_rules(tmp_path, FIXTURES / "long_event.json")
    assert rules and not [rule for rule in rules if rule is not None and "kizuna_source_sid" in metadata(rule)]
    assert "1 indicator(s) left out: not for detection (MISP to_ids off)" in summary["warnings"]
