"""Invalid STIX patterns are refused at ingest (`kizuna import`, TAXII POST) with the reason; valid ones are stored.

The check is `kizuna.stix.patterns.stix_pattern_problem`: the OASIS grammar (stix2-patterns) plus
object types that exist, with a regular-expression fast path for IOC-shaped patterns that must
agree with the grammar (checked differentially here).
"""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kizuna.stix.patterns import _fast_problem, _grammar_problem, stix_pattern_problem
from tests.conftest import Node, kizuna, kizuna_json

INVALID = [
    ("[ipv4-addr:value = ", "not valid STIX patterning"),
    ("[foo:bar = 1]", "unknown object type 'foo'"),
    ("[ipv4-adr:value = '198.51.100.1']", "unknown object type 'ipv4-adr'"),
    ("[file:hashes.MD5 = 'abc']", "not a valid MD5 hash"),
    ("ipv4-addr:value = '198.51.100.1'", "must start with '['"),
    ("[file:name = 'a'] REPEATS 2 TIMES REPEATS 3 TIMES", "Duplicate qualifier"),
    ("[file:nameLIKE 'a']", "not valid STIX patterning"),
]
VALID = [
    "[ipv4-addr:value = '198.51.100.1']",
    "[x-acme-sensor:serial = 'A1']",
    "[file:hashes.'SHA-256' = '" + "ab" * 32 + "' AND file:name = 'a.exe']",
    "[network-traffic:dst_port > 1000] WITHIN 60 SECONDS",
    "[email-message:from_ref.value = 'a@example.com' AND email-message:subject LIKE '%invoice%']",
    "([domain-name:value = 'a.example'] FOLLOWEDBY [url:value MATCHES '^http://a'])",
]
STAMP = "2026-01-01T00:00:00.000Z"


def indicator(pattern: str, pattern_type: str = "stix") -> dict[str, Any]:
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": STAMP,
            "modified": STAMP, "pattern": pattern, "pattern_type": pattern_type, "valid_from": STAMP}


@pytest.mark.parametrize(("pattern", "reason"), INVALID)
def test_invalid_patterns_have_a_reason(pattern: str, reason: str) -> None:
    problem = stix_pattern_problem(pattern)
    assert problem is not None and reason in problem


@pytest.mark.parametrize("pattern", VALID)
def test_valid_patterns_pass(pattern: str) -> None:
    assert stix_pattern_problem(pattern) is None


def test_shipped_demo_indicators_are_valid() -> None:
    demo = Path(__file__).resolve().parents[2] / "kizuna" / "demo"
    patterns = [o["pattern"] for f in demo.glob("*.json.gz") for o in json.loads(gzip.open(f).read())["objects"]
                if o.get("type") == "indicator" and o.get("pattern_type") == "stix"]
    assert patterns
    assert [p for p in patterns if stix_pattern_problem(p) is not None] == []


# The fast path must never accept what the grammar refuses, nor refuse with another verdict.
_types = st.sampled_from(["ipv4-addr", "file", "foo", "x-acme", "AND", "Domain-name", "url"])
_steps = st.sampled_from(["value", "name", "hashes.MD5", "hashes.'SHA-256'", "LIKE", "a_b", "'x y'", "x-y"])
_values = st.sampled_from(["'1.2.3.4'", "'" + "a" * 32 + "'", "'ab'", "'it\\'s'", "'%x%'", "5", "''"])
_ops = st.sampled_from([" = ", "=", " != ", " LIKE ", "LIKE ", " == ", " > ", " MATCHES ", "\tLIKE\n", " ISSUBSET "])
_joins = st.sampled_from([" AND ", " OR ", "AND ", " AND", " FOLLOWEDBY ", "\tOR\n", " OR", " ANDx "])


@st.composite
def ioc_like(draw: st.DrawFn) -> str:
    parts = [f"{draw(_types)}:{draw(_steps)}{draw(_ops)}{draw(_values)}" for _ in range(draw(st.integers(1, 3)))]
    text = parts[0]
    for part in parts[1:]:
        text += draw(_joins) + part
    return draw(st.sampled_from(["[", " [", "(["])) + text + draw(st.sampled_from(["]", "] ", "])"]))


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(ioc_like())
def test_fast_path_agrees_with_the_grammar(pattern: str) -> None:
    fast = _fast_problem(pattern)
    if fast is not False:
        assert (fast is None) == (_grammar_problem(pattern) is None), (pattern, fast, _grammar_problem(pattern))


def test_import_rejects_invalid_patterns_with_file_line_and_reason(tmp_path: Path) -> None:
    data = tmp_path / "node"
    kizuna_json(data, "init", "--org-name", "CERT Example", "--country", "NZL")
    kizuna_json(data, "collections", "create", "--title", "Intel", "--alias", "intel")
    good, bad = indicator(VALID[0]), indicator("[foo:bar = 1]")
    other = indicator("rule x { condition: true }", pattern_type="yara")  # other languages: stored unchecked
    bundle = tmp_path / "intel.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [good, bad, other]},
                                 indent=1))
    result = kizuna(data, "import", str(bundle), "--collection", "intel", "--json", check=False)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["stored"] == 2
    (failure,) = report["failures"]
    assert failure["id"] == bad["id"] and "unknown object type 'foo'" in failure["message"]
    starts = [n for n, line in enumerate(bundle.read_text().splitlines(), 1) if line == "  {"]
    assert failure["line"] == starts[1]  # the second object of the bundle
    stored = {o["id"] for o in json.loads(kizuna(data, "export", "--collection", "intel").stdout)["objects"]}
    assert stored == {good["id"], other["id"]}


def test_taxii_post_lists_invalid_patterns_under_failures(node: Node) -> None:
    bad = [indicator(pattern) for pattern, _reason in INVALID]
    good = indicator(VALID[1])
    status = node.post([*bad, good])
    assert status["success_count"] == 1
    failures = {f["id"]: f["message"] for f in status["failures"]}
    assert set(failures) == {b["id"] for b in bad}
    for obj, (_pattern, reason) in zip(bad, INVALID, strict=True):
        assert reason in failures[obj["id"]]
    listed = node.session("writer").get(node.collection_url() + "objects/", params={"match[type]": "indicator"})
    assert {o["id"] for o in listed.json().get("objects", [])} >= {good["id"]}
    assert not {o["id"] for o in listed.json().get("objects", [])} & set(failures)
