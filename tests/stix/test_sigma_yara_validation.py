"""Sigma and YARA indicators are checked at ingest by their own parsers: directly, through a real
`kizuna import` and through a real TAXII POST (SQLite and PostgreSQL), with the reason and rule line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kizuna.stix.validation import check_object
from tests.conftest import Node, kizuna, kizuna_json

STAMP = "2026-01-01T00:00:00.000Z"

GOOD_SIGMA = """\
title: Whoami run by a web server process
id: 0f0e8c3a-7e0a-4a5c-9a37-5f8d6e1c2b41
status: experimental
logsource:
  product: windows
  category: process_creation
detection:
  parent:
    ParentImage|endswith:
      - '\\\\w3wp.exe'
      - '\\\\httpd.exe'
  child:
    Image|endswith: '\\\\whoami.exe'
  condition: parent and child
level: high
"""
GOOD_YARA = """\
rule kizuna_test_dropper : dropper
{
    meta:
        description = "Marker string of a test dropper"
    strings:
        $marker = "KIZUNA-TEST-DROPPER" ascii wide
        $stub = { 4D 5A 90 00 03 }
    condition:
        $marker or $stub at 0
}
"""
# Line 6 of this rule ends its condition with a dangling `and`; YARA reports line 7, where `}` arrives.
BAD_YARA = 'rule broken\n{\n    strings:\n        $a = "x"\n    condition:\n        $a and\n}\n'
BAD_SIGMA_CONDITION = GOOD_SIGMA.replace("condition: parent and child", "condition: parent and stepchild")
BAD_SIGMA_YAML = "title: Broken\nlogsource:\n  product: windows\ndetection: [selection\n"


def indicator(number: int, pattern_type: str, pattern: str) -> dict[str, Any]:
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{number:08d}-0000-4000-8000-000000000000",
            "created": STAMP, "modified": STAMP, "valid_from": STAMP, "name": f"{pattern_type} {number}",
            "pattern_type": pattern_type, "pattern": pattern}


def test_good_sigma_and_yara_rules_are_accepted() -> None:
    assert check_object(indicator(1, "sigma", GOOD_SIGMA)) is None
    assert check_object(indicator(2, "yara", GOOD_YARA)) is None
    # Two documents in one pattern (a Sigma collection) are read as one.
    assert check_object(indicator(3, "sigma", GOOD_SIGMA + "---\n" + GOOD_SIGMA.replace("0f0e", "1f0e"))) is None


@pytest.mark.parametrize(
    ("pattern_type", "pattern", "reason"),
    [
        ("yara", BAD_YARA, "indicator: YARA rule does not compile: line 7: syntax error"),
        ("yara", 'rule a { strings: $a = "x" condition: $b }', 'undefined string "$b"'),
        ("yara", 'import "no_such_module"\nrule a { condition: true }', 'line 1: unknown module "no_such_module"'),
        ("yara", "// only a comment\n", "YARA pattern holds no rule"),
        ("sigma", BAD_SIGMA_CONDITION, "has an invalid condition: Detection 'stepchild' not defined"),
        ("sigma", BAD_SIGMA_YAML, "Sigma rule is not valid YAML: line 5, column 1"),
        ("sigma", "title: No log source\n", "Sigma rule is not valid: Sigma rule must have a log source"),
        ("sigma", GOOD_SIGMA.replace("level: high", "level: extreme"), "'extreme' is not a valid Sigma rule level"),
        ("sigma", "", "Sigma pattern holds no rule"),
    ],
)
def test_broken_rules_are_refused_with_the_parser_reason(pattern_type: str, pattern: str, reason: str) -> None:
    problem = check_object(indicator(9, pattern_type, pattern))
    assert problem is not None and reason in problem, problem


def test_a_yara_include_never_reads_a_local_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.yar"
    secret.write_text("rule leaked_secret_rule_name { condition: true }\n")
    problem = check_object(indicator(4, "yara", f'include "{secret}"\nrule a {{ condition: true }}'))
    assert problem is not None and "includes are disabled" in problem and "leaked_secret" not in problem


def test_plain_stix_indicators_never_load_the_sigma_or_yara_parsers() -> None:
    """The ingest hot path: a STIX indicator costs one string comparison more, and no import."""
    plain = indicator(5, "stix", "[ipv4-addr:value = '10.0.0.1'] OR [domain-name:value = 'example.com']")
    program = (
        "import sys, json\n"
        "from kizuna.stix.validation import check_object\n"
        f"obj = json.loads({json.dumps(json.dumps(plain))})\n"
        "assert check_object(obj) is None\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('sigma', 'yara', 'yaml'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(result.stdout) == []


def _bundle(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    objects = [indicator(11, "sigma", GOOD_SIGMA), indicator(12, "sigma", BAD_SIGMA_CONDITION),
               indicator(13, "yara", GOOD_YARA), indicator(14, "yara", BAD_YARA)]
    path = tmp_path / "rules.json"
    path.write_text("\n".join(json.dumps(o) for o in objects) + "\n")  # JSON lines: one object a line
    return path, objects


def test_kizuna_import_stores_good_rules_and_lists_bad_ones_with_reasons(tmp_path: Path, store_url: str) -> None:
    data_dir = tmp_path / "node"
    kizuna_json(data_dir, "init", "--org-name", "NCSC UK", "--country", "GBR", "--store", store_url)
    kizuna_json(data_dir, "collections", "create", "--title", "Rules", "--alias", "rules")
    path, objects = _bundle(tmp_path)
    result = kizuna(data_dir, "import", str(path), "--collection", "rules", check=False)
    assert result.returncode == 1
    assert f"{path}:2: {objects[1]['id']}: indicator: Sigma rule 'Whoami run by a web server process' has an " \
           "invalid condition: Detection 'stepchild' not defined in detections" in result.stdout
    assert f"{path}:4: {objects[3]['id']}: indicator: YARA rule does not compile: line 7: syntax error" in result.stdout
    stored = kizuna_json(data_dir, "objects", "list", "--collection", "rules")
    assert sorted(o["id"] for o in stored["objects"]) == [objects[0]["id"], objects[2]["id"]]
    assert {o["pattern"] for o in stored["objects"]} == {GOOD_SIGMA, GOOD_YARA}  # stored as sent


def test_taxii_post_lists_each_refused_rule_with_its_reason(node: Node, tmp_path: Path) -> None:
    _path, objects = _bundle(tmp_path)
    objects = [{**o, "id": o["id"].replace("-0000-4000-", "-0001-4000-")} for o in objects]  # fresh ids per backend
    status = node.post(objects)
    assert (status["success_count"], status["failure_count"]) == (2, 2)
    reasons = {f["id"]: f["message"] for f in status["failures"]}
    assert "Detection 'stepchild' not defined" in reasons[objects[1]["id"]]
    assert "YARA rule does not compile: line 7" in reasons[objects[3]["id"]]
