"""`kizuna match` failing well: one line (or one JSON error), a non-zero exit, nothing half-written;
bad lines (out-of-range times included) counted with their file and line while the rest is matched."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from kizuna.detect.intel import zeek_intel_indicators
from tests.conftest import kizuna, kizuna_json

ZEEK = Path(__file__).parent / "fixtures" / "zeek"
PROXY = Path(__file__).parents[2] / "examples" / "mappings"
HIT = {"ts": 1575413122.5, "uid": "C1", "id.orig_h": "10.0.0.5", "id.orig_p": 5353, "id.resp_h": "10.0.0.53",
       "id.resp_p": 53, "proto": "udp", "query": "guyspy.com"}


def _indicators(tmp_path: Path, objects: list[dict[str, Any]] | None = None, indent: int | None = 1) -> Path:
    objects = objects if objects is not None else list(
        zeek_intel_indicators((ZEEK / "demo.intel").read_text("utf-8").splitlines()))
    path = tmp_path / "intel.json"
    path.write_text(json.dumps({"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
                                "objects": objects}, indent=indent))
    return path


def _one_line_failure(result: Any) -> str:
    assert result.returncode != 0
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("kizuna match: ")
    return str(line)


def _json_failure(result: Any) -> dict[str, Any]:
    assert result.returncode != 0
    (line,) = result.stdout.splitlines()
    error: dict[str, Any] = json.loads(line)["error"]
    assert set(error) == {"code", "message", "file", "line"}
    return error


def _nothing_written(directory: Path, *names: str) -> None:
    assert [p.name for p in directory.iterdir() if p.name in names or p.name.endswith(".partial")] == []


def test_a_missing_log_fails_before_anything_is_written(tmp_path: Path) -> None:
    intel = _indicators(tmp_path)
    args = ["match", "--indicators", str(intel), str(ZEEK / "dns.log"), str(tmp_path / "nosuch.log"),
            "-o", str(tmp_path / "sightings.json"), "--alerts", str(tmp_path / "alerts.jsonl")]
    line = _one_line_failure(kizuna(tmp_path / "none", *args, check=False))
    assert "nosuch.log" in line and "does not exist" in line
    error = _json_failure(kizuna(tmp_path / "none", *args, "--json", check=False))
    assert error["file"] == str(tmp_path / "nosuch.log") and "does not exist" in error["message"]
    _nothing_written(tmp_path, "sightings.json", "alerts.jsonl")


def test_a_truncated_indicators_file_names_the_line_it_breaks_off(tmp_path: Path) -> None:
    intel = _indicators(tmp_path)
    text = intel.read_text()
    intel.write_text(text[: len(text) * 2 // 3])
    broken_at = len(intel.read_text().splitlines())
    args = ["match", "--indicators", str(intel), str(ZEEK / "dns.log"), "--alerts", str(tmp_path / "alerts.jsonl")]
    line = _one_line_failure(kizuna(tmp_path / "none", *args, check=False))
    assert line.endswith(f"{intel}:{broken_at}")
    error = _json_failure(kizuna(tmp_path / "none", *args, "--json", check=False))
    assert (error["file"], error["line"]) == (str(intel), broken_at)
    _nothing_written(tmp_path, "alerts.jsonl")

    # The same for JSON lines: the bad line is named.
    lines = [orjson.dumps(o).decode() for o in json.loads(text)["objects"]]
    intel.write_text("\n".join([lines[0], lines[1][:40], lines[2]]) + "\n")
    error = _json_failure(kizuna(tmp_path / "none", *args, "--json", check=False))
    assert (error["file"], error["line"]) == (str(intel), 2)


def test_a_collection_that_does_not_exist_fails_before_matching(tmp_path: Path) -> None:
    node = tmp_path / "node"
    kizuna_json(node, "init", "--org-name", "CERT Example", "--country", "NZL")
    intel = _indicators(tmp_path)
    args = ["match", "--indicators", str(intel), str(ZEEK / "dns.log"), "--collection", "nosuch",
            "-o", str(tmp_path / "sightings.json"), "--alerts", str(tmp_path / "alerts.jsonl")]
    line = _one_line_failure(kizuna(node, *args, check=False))
    assert "nosuch" in line
    assert "no collection 'nosuch'" in _json_failure(kizuna(node, *args, "--json", check=False))["message"]
    assert line.startswith("kizuna match: --collection: no collection 'nosuch'")  # which option named it
    line = _one_line_failure(kizuna(node, "match", "--from-collection", "nosuch", str(ZEEK / "dns.log"),
                                    check=False))
    assert line.startswith("kizuna match: --from-collection: no collection 'nosuch'")
    _nothing_written(tmp_path, "sightings.json", "alerts.jsonl")


def test_zeek_intel_rows_that_make_no_indicator_are_named_and_subnets_are_read(tmp_path: Path) -> None:
    # Rows were dropped without a word, a misspelt type and an impossible address among them, and SUBNET rows,
    # which `kizuna export --format zeek` writes, were never read.
    intel = tmp_path / "bad.intel"
    intel.write_text("#fields\tindicator\tindicator_type\tmeta.source\n10.0.0.0/24\tIntel::SUBNET\tx\n"
                     "1.2.3.999\tIntel::ADDR\tx\n\tIntel::DOMAIN\tx\nguyspy.com\tIntel::DOMAN\tx\n")
    log = tmp_path / "conn.log"
    log.write_text(json.dumps(HIT) + "\n")
    result = kizuna_json(tmp_path / "none", "match", "--zeek-intel", str(intel), str(log))
    assert result["hits"] == 1  # 10.0.0.5 is in the SUBNET row's range
    assert result["intel_rows_skipped"] == {"count": 3, "first": [
        f"{intel}:3: '1.2.3.999' is not an address", f"{intel}:4: the indicator is empty",
        f"{intel}:5: indicator_type 'Intel::DOMAN' is not one Kizuna reads (Intel::ADDR, Intel::DOMAIN, "
        "Intel::EMAIL, Intel::FILE_HASH, Intel::SUBNET, Intel::URL)"]}
    text = kizuna(tmp_path / "none", "match", "--zeek-intel", str(intel), str(log), "-o", str(tmp_path / "s.json"))
    assert f"3 Zeek Intel row(s) made no indicator:\n    {intel}:3: '1.2.3.999' is not an address" in text.stderr
    headless = tmp_path / "headless.intel"
    headless.write_text("guyspy.com\tIntel::DOMAIN\tx\n")
    error = _json_failure(kizuna(tmp_path / "none", "match", "--zeek-intel", str(headless), str(log), "--json",
                                 check=False))
    assert (error["file"], error["line"]) == (str(headless), 1)
    assert error["message"].endswith("the first: a row before the #fields line that names its columns")


def test_no_log_named_at_a_terminal_is_a_usage_error_not_a_wait(tmp_path: Path) -> None:
    # Standard input is read when no file is named: at a terminal match waited for typing, and an empty one
    # said "no log line could be matched".
    import os
    import pty
    import subprocess
    import sys

    controller, terminal = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "kizuna", "match", "--indicators", str(_indicators(tmp_path))],
                              stdin=terminal, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    finally:
        os.close(terminal)
        os.close(controller)
    assert done.returncode == 2
    assert done.stderr == "kizuna match: give the log files to match (or - to read standard input)\n"


def test_an_address_block_from_an_ioc_list_matches_the_addresses_inside_it(tmp_path: Path) -> None:
    # The list's 10.0.0.0/24 was stored as `value = '10.0.0.0/24'`, which compares the text (STIX 2.1 §9.5):
    # only a log naming the block itself would have matched it; ISSUBSET matches the addresses it holds.
    from kizuna.formats.ioc_lists import read_ioc_list

    (block,) = read_ioc_list(["10.0.0.0/24"], "blocks.txt", warninglists=None).objects
    assert block["pattern"] == "[ipv4-addr:value ISSUBSET '10.0.0.0/24']"
    block["valid_from"] = "2019-01-01T00:00:00Z"  # the log line is of 2019
    log = tmp_path / "conn.log"
    log.write_text(json.dumps(HIT) + "\n")  # from 10.0.0.5
    result = kizuna_json(tmp_path / "none", "match", "--indicators", str(_indicators(tmp_path, [block])), str(log))
    assert result["hits"] == 1


def test_a_gzip_log_is_matched_as_its_text_and_not_followed(tmp_path: Path) -> None:
    # A rotated log is often compressed: read as it is, every line was "of no known format".
    intel = _indicators(tmp_path)
    packed = tmp_path / "dns.log.gz"
    packed.write_bytes(gzip.compress((ZEEK / "dns.log").read_bytes()))
    plain = kizuna_json(tmp_path / "none", "match", "--indicators", str(intel), str(ZEEK / "dns.log"))
    compressed = kizuna_json(tmp_path / "none", "match", "--indicators", str(intel), str(packed))
    counted = ("lines", "events", "hits", "sightings", "unparsed", "unmapped")
    assert [compressed[k] for k in counted] == [plain[k] for k in counted] and plain["hits"] > 0
    followed = _one_line_failure(kizuna(tmp_path / "none", "match", "--indicators", str(intel), "--follow",
                                        str(packed), check=False))
    assert followed == f"kizuna match: {packed} is compressed (gzip): a growing log is followed as text"


def test_follow_with_several_inputs_and_an_unknown_mapping_are_refused(tmp_path: Path) -> None:
    intel = _indicators(tmp_path)
    several = _one_line_failure(kizuna(tmp_path / "none", "match", "--indicators", str(intel), "--follow",
                                       str(ZEEK / "dns.log"), str(ZEEK / "http.log"), check=False))
    assert "--follow reads one growing file; 2 inputs were given" in several
    unknown = _one_line_failure(kizuna(tmp_path / "none", "match", "--indicators", str(intel), "--mapping", "nosuch",
                                       str(ZEEK / "dns.log"), check=False))
    assert "unknown mapping 'nosuch'; one of: " in unknown and "zeek-dns" in unknown


@pytest.mark.parametrize("option", ["-o", "--alerts"])
def test_an_output_into_a_missing_directory_fails_before_matching(tmp_path: Path, option: str) -> None:
    intel = _indicators(tmp_path)
    other = "--alerts" if option == "-o" else "-o"
    args = ["match", "--indicators", str(intel), str(ZEEK / "dns.log"), option, str(tmp_path / "nodir" / "x.json"),
            other, str(tmp_path / "other.json")]
    line = _one_line_failure(kizuna(tmp_path / "none", *args, check=False))
    assert "does not exist" in line and "nodir" in line
    assert _json_failure(kizuna(tmp_path / "none", *args, "--json", check=False))["code"] == "io"
    _nothing_written(tmp_path, "other.json")


def test_out_of_range_times_are_bad_lines_and_the_rest_is_matched(tmp_path: Path) -> None:
    log = tmp_path / "dns.json.log"
    bad_times: list[Any] = [253402318800.0, "NaN", 1e300, -1e20, 10**30]
    log.write_text("".join(json.dumps({**HIT, "ts": t}) + "\n" for t in [HIT["ts"], *bad_times, HIT["ts"]]))
    eve = tmp_path / "eve.json"
    suricata = {"timestamp": "2019-12-03T22:45:22.000000+0000", "event_type": "dns", "src_ip": "10.0.0.5",
                "dest_ip": "10.0.0.53", "src_port": 5353, "dest_port": 53, "proto": "UDP",
                "dns": {"type": "query", "rrname": "guyspy.com"}}
    ecs = {"@timestamp": "2019-12-03T22:45:22Z", "ecs": {"version": "8.11.0"}, "source": {"ip": "10.0.0.5"},
           "dns": {"question": {"name": "guyspy.com"}}}
    eve.write_bytes(b"\n".join([
        orjson.dumps(suricata), orjson.dumps({**suricata, "timestamp": "9999-12-31T23:00:00.000000-0500"}),
        orjson.dumps(ecs), orjson.dumps({**ecs, "@timestamp": "0001-01-01T00:00:00+01:00"}),
    ]) + b"\n")
    alerts = tmp_path / "alerts.jsonl"
    result = kizuna(tmp_path / "none", "match", "--indicators", str(_indicators(tmp_path)), str(log), str(eve),
                    "--alerts", str(alerts), "--json")
    summary = json.loads(result.stdout)
    assert summary["hits"] == 4
    assert {(p["file"], p["line"]) for p in summary["unparsed_lines"]} == {
        *((str(log), n) for n in range(2, 7)), (str(eve), 2), (str(eve), 4)}
    assert all("outside the years 1-9999" in p["reason"] for p in summary["unparsed_lines"])
    assert [(a["file"], a["line"]) for a in map(json.loads, alerts.read_text().splitlines())] == [
        (str(log), 1), (str(log), 7), (str(eve), 1), (str(eve), 3)]


def test_observed_data_with_an_impossible_time_is_reported_and_the_rest_matched(tmp_path: Path) -> None:
    objects: list[dict[str, Any]] = []
    for n, stamp in enumerate(["2019-12-03T22:45:22Z", "10000-01-01T00:00:00Z", "2019-12-03T23:10:00Z"]):
        domain = f"domain-name--0000000{n}-0000-4000-8000-000000000000"
        objects += [
            {"type": "domain-name", "spec_version": "2.1", "id": domain, "value": "guyspy.com"},
            {"type": "observed-data", "spec_version": "2.1", "id": f"observed-data--0000000{n}-0000-4000-8000-"
             "000000000000", "created": "2019-12-03T22:45:22Z", "modified": "2019-12-03T22:45:22Z",
             "first_observed": "2019-12-03T22:45:22Z", "last_observed": stamp, "number_observed": 1,
             "object_refs": [domain]},
        ]
    observed = tmp_path / "observed.json"
    observed.write_text(json.dumps({"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56e",
                                    "objects": objects}, indent=1))
    result = kizuna(tmp_path / "none", "match", "--indicators", str(_indicators(tmp_path)), "--observed-data",
                    str(observed), "--alerts", str(tmp_path / "alerts.jsonl"), "--json")
    summary = json.loads(result.stdout)
    assert (summary["events"], summary["hits"], summary["unparsed"]) == (2, 2, 1)
    (problem,) = summary["unparsed_lines"]
    starts = [n for n, line in enumerate(observed.read_text().splitlines(), 1) if line == "  {"]
    assert problem["file"] == str(observed) and problem["line"] == starts[3]
    assert problem["reason"].startswith("observed-data--00000001-")
    alerts = [json.loads(a) for a in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [(a["file"], a["line"]) for a in alerts] == [(str(observed), starts[1]), (str(observed), starts[5])]


def test_no_usable_indicators_and_no_usable_lines_are_failures_with_distinct_messages(tmp_path: Path) -> None:
    log = tmp_path / "dns.json.log"
    log.write_bytes(orjson.dumps(HIT) + b"\n")
    stamp = "2019-01-01T00:00:00.000Z"
    revoked = {"type": "indicator", "spec_version": "2.1", "id": "indicator--6a1b3a53-7f0e-4f0e-9d8c-3a2f1b0c9d8e",
               "created": stamp, "modified": stamp, "pattern": "[domain-name:value = 'guyspy.com']",
               "pattern_type": "stix", "valid_from": stamp, "revoked": True}
    none = tmp_path / "none"
    unusable = _json_failure(kizuna(none, "match", "--indicators", str(_indicators(tmp_path, [revoked])), str(log),
                                    "--json", check=False))
    assert unusable["code"] == "no-usable-indicators" and "1 revoked" in unusable["message"]
    empty_intel = tmp_path / "empty.intel"
    empty_intel.write_text("#fields\tindicator\tindicator_type\n")
    line = _one_line_failure(kizuna(none, "match", "--zeek-intel", str(empty_intel), str(log), check=False))
    assert "no indicators to match" in line

    garbage = tmp_path / "garbage.log"
    garbage.write_text("not a log line\n{\"neither\": \"this\"}\n")
    args = ["match", "--indicators", str(_indicators(tmp_path)), str(garbage), "-o", str(tmp_path / "s.json")]
    line = _one_line_failure(kizuna(none, *args, check=False))
    assert "no log line could be matched: 2 lines read, 1 unparsable, 1 of no known format" in line
    failure = _json_failure(kizuna(none, *args, "--json", check=False))
    # The first bad line is named by file and line, in the words and in the error object.
    assert failure["code"] == "no-log-lines" and (failure["file"], failure["line"]) == (str(garbage), 1)
    assert f"first: {garbage}:1: " in failure["message"]
    _nothing_written(tmp_path, "s.json")


def test_observed_data_on_standard_input_is_matched_and_a_truncated_one_named(tmp_path: Path) -> None:
    stamp = "2019-12-03T22:45:22Z"
    objects = [
        {"type": "domain-name", "spec_version": "2.1", "id": "domain-name--00000000-0000-4000-8000-000000000000",
         "value": "guyspy.com"},
        {"type": "observed-data", "spec_version": "2.1", "id": "observed-data--00000000-0000-4000-8000-000000000000",
         "created": stamp, "modified": stamp, "first_observed": stamp, "last_observed": stamp, "number_observed": 1,
         "object_refs": ["domain-name--00000000-0000-4000-8000-000000000000"]},
    ]
    body = json.dumps({"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56e", "objects": objects},
                      indent=1).encode()
    args = ["match", "--indicators", str(_indicators(tmp_path)), "--observed-data", "-", "--json"]
    summary = json.loads(kizuna(tmp_path / "none", *args, input=body).stdout)
    assert (summary["events"], summary["hits"]) == (1, 1)
    error = _json_failure(kizuna(tmp_path / "none", *args, input=body[: len(body) // 2], check=False))
    assert error["file"] == "<stdin>" and error["line"] > 1


def test_a_zeek_header_read_in_one_file_does_not_read_the_next(tmp_path: Path) -> None:
    """Rows of a file without its own header are unparsable whatever came before it: the result of a run
    does not depend on the order its files are given in."""
    headerless = tmp_path / "headerless.log"
    headerless.write_bytes(b"".join(line for line in (ZEEK / "dns.log").read_bytes().splitlines(keepends=True)
                                    if not line.startswith(b"#")))
    intel = _indicators(tmp_path)

    def run(*logs: Path) -> dict[str, Any]:
        return kizuna_json(tmp_path / "none", "match", "--indicators", str(intel), *map(str, logs))

    rows = len(headerless.read_bytes().splitlines())
    alone = _json_failure(kizuna(tmp_path / "none", "match", "--indicators", str(intel), str(headerless), "--json",
                                 check=False))
    assert alone["code"] == "no-log-lines" and f"{rows} unparsable" in alone["message"]
    after = run(ZEEK / "dns.log", headerless)
    before = run(headerless, ZEEK / "dns.log")
    assert after["hits"] == before["hits"] == run(ZEEK / "dns.log")["hits"]
    assert after["unparsed"] == before["unparsed"] == rows


def test_a_zeek_intel_file_that_is_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    intel = tmp_path / "latin1.intel"
    intel.write_bytes(b"#fields\tindicator\tindicator_type\tmeta.source\nevil.example\tIntel::DOMAIN\tx\n"
                      b"caf\xe9.example\tIntel::DOMAIN\tx\n")
    args = ["match", "--zeek-intel", str(intel), str(ZEEK / "dns.log")]
    assert _one_line_failure(kizuna(tmp_path / "none", *args, check=False)) == (
        f"kizuna match: not UTF-8 text (invalid continuation byte): {intel}:3")
    error = _json_failure(kizuna(tmp_path / "none", *args, "--json", check=False))
    assert (error["code"], error["file"], error["line"]) == ("encoding", str(intel), 3)


def test_a_log_that_opens_with_a_byte_order_mark_is_matched_from_its_first_line(tmp_path: Path) -> None:
    """Some Windows tools write a UTF-8 byte order mark before the first line: a hit on that line still counts,
    and a Zeek header on it is still the header."""
    intel = _indicators(tmp_path)
    first = tmp_path / "first.log"
    first.write_bytes(orjson.dumps(HIT) + b"\n")
    for log in (first, ZEEK / "dns.log", ZEEK / "json" / "http.log"):
        marked = tmp_path / f"bom-{log.name}"
        marked.write_bytes(b"\xef\xbb\xbf" + log.read_bytes())
        plain, with_mark = (kizuna_json(tmp_path / "none", "match", "--indicators", str(intel), str(path))
                            for path in (log, marked))
        assert with_mark["hits"] == plain["hits"] > 0, log
        assert (with_mark["events"], with_mark["unparsed"]) == (plain["events"], plain["unparsed"]), log


@pytest.mark.parametrize("identity", ["日本", "identity--notauuid", "indicator--7d5a0c3e-2f4b-4e1a-9c8d-1b2a3c4d5e6f"])
def test_an_identity_that_is_no_identity_id_is_a_usage_error(tmp_path: Path, identity: str) -> None:
    """where_sighted_refs holds identity ids: anything else would make every sighting invalid STIX."""
    out = tmp_path / "s.json"
    args = ["match", "--indicators", str(_indicators(tmp_path)), str(ZEEK / "dns.log"), "--identity", identity,
            "-o", str(out)]
    result = kizuna(tmp_path / "none", *args, check=False)
    assert result.returncode == 2
    assert f"'{identity}' is not a STIX identity id (identity--<UUID>)" in _one_line_failure(result)
    error = _json_failure(kizuna(tmp_path / "none", *args, "--json", check=False))
    assert error["code"] == "usage" and "--identity" in error["message"]
    _nothing_written(tmp_path, "s.json")


def test_sightings_the_collection_refuses_are_named_and_fail_the_run(tmp_path: Path) -> None:
    """An indicator whose id is no STIX id makes a sighting the store refuses: the summary lists it with the
    store's reason, one line says so, and the run exits 1 (the sightings it took are stored)."""
    node = tmp_path / "node"
    kizuna_json(node, "init", "--org-name", "CERT Example", "--country", "NZL")
    kizuna_json(node, "collections", "create", "--title", "Sightings", "--alias", "sightings")
    objects = list(zeek_intel_indicators((ZEEK / "demo.intel").read_text("utf-8").splitlines()))
    broken = next(o for o in objects if "guyspy.com" in o["pattern"])
    broken["id"] = "indicator--notauuid"
    args = ["match", "--indicators", str(_indicators(tmp_path, objects)), str(ZEEK / "dns.log"),
            "--collection", "sightings"]
    result = kizuna(node, *args, "--json", check=False)
    assert result.returncode == 1
    (failure,) = json.loads(result.stdout)["stored"]["failures"]
    assert "sighting_of_ref" in failure["message"] and "indicator--notauuid" in failure["message"]
    assert result.stderr.splitlines() == [
        f"kizuna match: 1 of 1 sightings could not be stored in sightings: {failure['id']}: {failure['message']}"]
    text = kizuna(node, *args, check=False)
    assert text.returncode == 1 and text.stderr.splitlines()[-1] == result.stderr.splitlines()[0]


@pytest.mark.parametrize(("change", "reason"), [
    ({"objects": {"host": {"type": "nosuch-type", "properties": {"value": "host"}}}},
     "objects.host.type 'nosuch-type' is not a STIX 2.1 cyber-observable type"),
    ({"time": {"field": "time", "format": "rfc2822"}}, "time.format 'rfc2822' is not one of epoch, iso"),
    ({"objects": {"url": {"type": "url", "properties": {"value": {"template": "{client"}}}}},
     "objects.url.properties.value: template '{client' is not a template"),
    ({"objects": {"flow": {"type": "network-traffic", "properties": {"dst_port": "server.port"},
                           "refs": {"src_ref": "nosuch"}}}},
     "objects.flow.refs.src_ref: 'nosuch' is not an alias of this mapping's objects"),
    # A misspelt key was ignored, and a mapping without its signature claimed every record of every format.
    ({"signatur": ["client"]}, "unknown key 'signatur'"),
    ({"signature": []}, "signature must list the fields every record of this format has"),
    ({"time": {"format": "iso"}}, "time needs a field"),
])
def test_a_mapping_file_unlike_the_documented_format_is_refused_up_front(
        tmp_path: Path, change: dict[str, Any], reason: str) -> None:
    mapping = json.loads((PROXY / "proxy-mapping.json").read_text())
    mapping = {**mapping, **change, "objects": {**mapping["objects"], **change.get("objects", {})}}
    bad = tmp_path / "bad-mapping.json"
    bad.write_text(json.dumps(mapping))
    args = ["match", "--indicators", str(_indicators(tmp_path)), "--mapping-file", str(bad), str(PROXY / "proxy.log"),
            "--alerts", str(tmp_path / "alerts.jsonl")]
    line = _one_line_failure(kizuna(tmp_path / "none", *args, check=False))
    assert line.startswith(f"kizuna match: mapping file {bad} is not valid: example-proxy: ") and reason in line
    error = _json_failure(kizuna(tmp_path / "none", *args, "--json", check=False))
    assert (error["code"], error["file"]) == ("mapping", str(bad))
    _nothing_written(tmp_path, "alerts.jsonl")


def test_a_mapping_file_may_not_take_a_shipped_mapping_s_name(tmp_path: Path) -> None:
    mapping = {**json.loads((PROXY / "proxy-mapping.json").read_text()), "name": "zeek-dns"}
    shadow = tmp_path / "shadow.json"
    shadow.write_text(json.dumps(mapping))
    line = _one_line_failure(kizuna(tmp_path / "none", "match", "--indicators", str(_indicators(tmp_path)),
                                    "--mapping-file", str(shadow), str(ZEEK / "dns.log"), check=False))
    assert line == ("kizuna match: mapping 'zeek-dns' is the name of a shipped mapping; give yours another name: "
                    f"{shadow}")


def test_a_mapping_file_that_is_not_json_is_named_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad-mapping.json"
    bad.write_text('{"name": "x",\n "signature": [}\n')
    args = ["match", "--indicators", str(_indicators(tmp_path)), "--mapping-file", str(bad), str(PROXY / "proxy.log")]
    assert _one_line_failure(kizuna(tmp_path / "none", *args, check=False)) == (
        f"kizuna match: mapping file is not valid JSON: Expecting value (column 16): {bad}:2")
    error = _json_failure(kizuna(tmp_path / "none", *args, "--json", check=False))
    assert (error["code"], error["file"], error["line"]) == ("mapping", str(bad), 2)


def test_an_indicators_directory_is_refused_as_every_other_file_option_refuses_one(tmp_path: Path) -> None:
    folder = tmp_path / "adir"
    folder.mkdir()
    for option in ("--indicators", "--zeek-intel"):
        result = kizuna(tmp_path / "none", "match", option, str(folder), str(ZEEK / "dns.log"), check=False)
        assert result.returncode == 2
        assert _one_line_failure(result) == (
            f"kizuna match: Invalid value for '{option}': File '{folder}' is a directory.")


def test_an_idle_timeout_without_follow_is_a_usage_error(tmp_path: Path) -> None:
    args = ["match", "--indicators", str(_indicators(tmp_path)), "--idle-timeout", "1", str(ZEEK / "dns.log")]
    result = kizuna(tmp_path / "none", *args, check=False)
    assert result.returncode == 2 and "--idle-timeout bounds a --follow run" in _one_line_failure(result)
    assert _json_failure(kizuna(tmp_path / "none", *args, "--json", check=False))["code"] == "usage"


def test_a_time_that_is_no_number_is_a_bad_line_and_a_null_one_no_time(tmp_path: Path) -> None:
    """`"ts": true` is no time of 1970, nor a list or text a time: each such line is reported with its file
    and line and the others are matched; a null time is no time (the alert's time is null)."""
    log = tmp_path / "dns.json.log"
    times: list[Any] = [True, ["1575413122"], {"s": 1}, "soon", None, HIT["ts"]]
    log.write_text("".join(json.dumps({**HIT, "ts": t}) + "\n" for t in times))
    alerts = tmp_path / "alerts.jsonl"
    summary = kizuna_json(tmp_path / "none", "match", "--indicators", str(_indicators(tmp_path)), str(log),
                          "--alerts", str(alerts))
    assert [(p["file"], p["line"]) for p in summary["unparsed_lines"]] == [(str(log), n) for n in range(1, 5)]
    assert summary["unparsed_lines"][0]["reason"] == "zeek-dns: time True is not a number of seconds"
    assert [(a["line"], a["time"]) for a in map(json.loads, alerts.read_text().splitlines())] == [
        (5, None), (6, "2019-12-03T22:45:22.500Z")]


def test_a_response_only_zeek_http_record_is_mapped_to_its_connection_addresses(tmp_path: Path) -> None:
    """Line 18 of the zat http.log is a 408 with no method and no uri: still an HTTP record of a connection."""
    http = Path(__file__).parents[2] / "examples" / "zeek" / "json" / "http.log"
    assert "method" not in json.loads(http.read_text().splitlines()[17])
    stamp = "2019-01-01T00:00:00.000Z"
    address = {"type": "indicator", "spec_version": "2.1", "id": "indicator--6a1b3a53-7f0e-4f0e-9d8c-3a2f1b0c9d8f",
               "created": stamp, "modified": stamp, "pattern": "[ipv4-addr:value = '8.208.24.139']",
               "pattern_type": "stix", "valid_from": stamp}
    alerts = tmp_path / "alerts.jsonl"
    summary = kizuna_json(tmp_path / "none", "match", "--indicators", str(_indicators(tmp_path, [address])),
                          str(http), "--alerts", str(alerts))
    assert summary["unmapped"] == 0 and summary["events"] == summary["lines"]
    assert 18 in {a["line"] for a in map(json.loads, alerts.read_text().splitlines())}


def test_the_first_record_of_no_known_format_and_a_forced_mapping_that_does_not_fit_are_named(tmp_path: Path) -> None:
    """Counts alone sent a person guessing: the summary names the first such record's file and line. A forced
    mapping reads every record, so a wrong one made every line an event that could never hit, without a word."""
    log = tmp_path / "mixed.log"
    log.write_text(json.dumps(HIT) + "\n" + json.dumps({"note": "no log of any kind"}) + "\n")
    indicators = str(_indicators(tmp_path))
    summary = kizuna_json(tmp_path / "none", "match", "--indicators", indicators, str(log))
    assert summary["unmapped"] == 1 and summary["first_unmapped"]["file"] == str(log)
    assert summary["first_unmapped"]["line"] == 2 and summary["unlike_forced_mapping"] == 0
    forced = kizuna_json(tmp_path / "none", "match", "--indicators", indicators, str(log), "--mapping", "zeek-http")
    assert forced["unlike_forced_mapping"] == 2 and forced["hits"] == 0
    assert (forced["first_unlike"]["file"], forced["first_unlike"]["line"]) == (str(log), 1)
    assert "zeek-http" in forced["first_unlike"]["reason"]
    text = kizuna(tmp_path / "none", "match", "--indicators", indicators, str(log), "--mapping", "zeek-http").stderr
    assert f"2 record(s) the forced --mapping does not fit; the first: {log}:1: " in text
