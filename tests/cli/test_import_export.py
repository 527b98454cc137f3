"""``kizuna import`` / ``export`` / ``audit export`` at their edges, as real processes on real stores."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import kizuna, kizuna_json, run_on_a_terminal

TLP_GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"


def identity(number: int) -> dict[str, Any]:
    return {"type": "identity", "spec_version": "2.1", "id": f"identity--{uuid.UUID(int=number + 1, version=4)}",
            "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
            "name": f"Organisation {number}", "identity_class": "organization"}


def count_in(data_dir: Path, alias: str) -> int:
    listed = kizuna_json(data_dir, "collections", "list")["collections"]
    return int(next(c for c in listed if c["alias"] == alias)["objects"])


@pytest.fixture
def data_dir(tmp_path: Path, store_url: str) -> Path:
    directory = tmp_path / "node"
    kizuna_json(directory, "init", "--org-name", "NCSC UK", "--country", "GBR", "--store", store_url)
    return directory


@pytest.mark.parametrize("layout", ["bundle", "envelope", "list", "bare object", "json lines"])
def test_import_reads_every_container_whole(data_dir: Path, tmp_path: Path, layout: str) -> None:
    objects = [identity(n) for n in range(3)]
    text = {
        "bundle": json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}, indent=2),
        "envelope": json.dumps({"more": False, "objects": objects}),
        "list": json.dumps(objects),
        "bare object": json.dumps(objects[0], indent=1),
        "json lines": "\n".join(json.dumps(o) for o in objects) + "\n",
    }[layout]
    expected = 1 if layout == "bare object" else 3
    kizuna_json(data_dir, "collections", "create", "--title", "In", "--alias", "in")
    path = tmp_path / "input.json"
    path.write_text(text)
    report = kizuna_json(data_dir, "import", str(path), "--collection", "in")
    assert (report["total"], report["stored"], report["rejected"]) == (expected, expected, 0)
    assert count_in(data_dir, "in") == expected


@pytest.mark.parametrize("content", [
    '{"type": "bundle", "id": "bundle--0d4f0e5d-9a55-4a3b-9a0f-2f4b0f0f0f0f", "objects": []}',
    "[]", "{}", '{"name": "not STIX"}', "\n\n",
])
def test_import_of_nothing_is_an_error(data_dir: Path, tmp_path: Path, content: str) -> None:
    kizuna_json(data_dir, "collections", "create", "--title", "In", "--alias", "in")
    path = tmp_path / "nothing.json"
    path.write_text(content)
    result = kizuna(data_dir, "import", str(path), "--collection", "in", check=False)
    assert result.returncode != 0
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("kizuna import: ")
    assert str(path) in result.stderr
    as_json = kizuna(data_dir, "import", str(path), "--collection", "in", "--json", check=False)
    assert as_json.returncode != 0 and json.loads(as_json.stdout)["error"]["file"] == str(path)


def test_a_truncated_bundle_stores_nothing(data_dir: Path, tmp_path: Path) -> None:
    """All or nothing per file: objects read before the cut, even whole ingest batches of them, are not stored."""
    kizuna_json(data_dir, "collections", "create", "--title", "In", "--alias", "in")
    # More objects than one ingest batch (1000), then a cut inside the next object.
    complete = [json.dumps(identity(n)) for n in range(1500)]
    path = tmp_path / "cut.json"
    path.write_text('{"type": "bundle", "id": "bundle--1", "objects": [\n' + ",\n".join(complete)
                    + ',\n{"type": "identity", "id": "ident')
    result = kizuna(data_dir, "import", str(path), "--collection", "in", check=False)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("kizuna import: unexpected end of file")
    assert result.stderr.rstrip().endswith(f"(nothing of the file was stored): {path}:1502")
    assert count_in(data_dir, "in") == 0
    error = json.loads(kizuna(data_dir, "import", str(path), "--collection", "in", "--json", check=False).stdout)
    assert (error["error"]["file"], error["error"]["line"], error["error"]["code"]) == (str(path), 1502, "syntax")
    assert count_in(data_dir, "in") == 0


def test_a_bundle_missing_a_comma_stores_none_of_its_objects(data_dir: Path, tmp_path: Path) -> None:
    kizuna_json(data_dir, "collections", "create", "--title", "In", "--alias", "in")
    first, second, third, fourth = (json.dumps(identity(n)) for n in range(4))
    path = tmp_path / "badcomma.json"
    path.write_text('{"type": "bundle", "id": "bundle--1", "objects": [\n'
                    f"{first},\n{second},\n{third}\n{fourth}\n]}}\n")
    result = kizuna(data_dir, "import", str(path), "--collection", "in", check=False)
    assert result.returncode == 1
    assert result.stderr == ("kizuna import: expected ',' or ']' after an element of the objects array, found '{' "
                             f"(nothing of the file was stored): {path}:5\n")
    assert count_in(data_dir, "in") == 0


def test_a_malformed_bundle_in_a_directory_leaves_the_other_files_imported(data_dir: Path, tmp_path: Path) -> None:
    kizuna_json(data_dir, "collections", "create", "--title", "In", "--alias", "in")
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "a-broken.json").write_text(json.dumps([identity(0), identity(1)])[:-1])  # the closing ] cut off
    (folder / "b-good.json").write_text(json.dumps([identity(2), identity(3)]))
    report = json.loads(kizuna(data_dir, "import", str(folder), "--collection", "in", "--json", check=False).stdout)
    assert [s["source"] for s in report["sources"]] == [str(folder / "b-good.json")]
    (broken,) = report["failed_sources"]
    assert broken["source"] == str(folder / "a-broken.json") and "nothing of the file was stored" in broken["error"]
    assert count_in(data_dir, "in") == 2


def test_a_bad_json_line_is_named_and_the_lines_after_it_are_imported(data_dir: Path, tmp_path: Path) -> None:
    """JSON lines: each line stands alone, so one cut short (a partner's feed, a log shipper) is a rejection
    named by its line, not the end of the import with only what came before it stored."""
    kizuna_json(data_dir, "collections", "create", "--title", "In", "--alias", "in")
    path = tmp_path / "feed.jsonl"
    path.write_text("\n".join([json.dumps(identity(0)), '{"type": "identity",', "",
                                json.dumps({"objects": [identity(1), identity(2)]}), "[1, 2", json.dumps(identity(3))])
                    + "\n")
    result = kizuna(data_dir, "import", str(path), "--collection", "in", check=False)
    assert result.returncode == 1
    assert f"{path}:2: not JSON" in result.stdout and f"{path}:5: not JSON" in result.stdout
    assert result.stderr == "kizuna import: 2 lines not JSON (listed above)\n"  # they never reached ingest
    # The summary adds up: objects read, and apart from them the lines no object was read from.
    assert f"{path}: 4 objects read: 4 stored, 0 already stored, 0 rejected, and 2 lines not JSON" in result.stdout
    assert count_in(data_dir, "in") == 4
    report = json.loads(kizuna(data_dir, "import", str(path), "--collection", "in", "--json", check=False).stdout)
    assert report["collection_name"] == "in"  # by name beside the id, as the text report says it
    assert [(f["line"], f["id"]) for f in report["failures"]] == [(2, None), (5, None)]
    assert (report["duplicates"], report["rejected"]) == (4, 2)


def test_an_object_nested_too_deep_to_write_is_rejected_for_that(data_dir: Path, tmp_path: Path) -> None:
    """The import parses 1024 levels of nesting, as orjson does, and the node writes 254: an object between the two
    is rejected on its line for its depth (it used to be blamed on an integer outside the 64-bit range)."""
    kizuna_json(data_dir, "collections", "create", "--title", "In", "--alias", "in")
    deep: Any = 1
    for _ in range(299):
        deep = [deep]
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps(identity(0)) + "\n" + json.dumps(dict(identity(1), x_deep=deep)) + "\n")
    report = json.loads(kizuna(data_dir, "import", str(path), "--collection", "in", "--json", check=False).stdout)
    assert (report["stored"], report["rejected"]) == (1, 1)
    [failure] = report["failures"]
    assert failure["line"] == 2 and failure["id"] == identity(1)["id"]
    assert "deeper than 254 levels" in failure["message"] and "integer" not in failure["message"], failure


def test_import_report_separates_stored_duplicate_rejected_and_added_by_node(data_dir: Path, tmp_path: Path) -> None:
    kizuna_json(data_dir, "collections", "create", "--title", "In", "--alias", "in")
    marked = {**identity(1), "object_marking_refs": [TLP_GREEN]}
    bad = {"type": "indicator", "spec_version": "2.1", "id": "indicator--not-a-uuid"}
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps({"type": "bundle", "id": "bundle--1", "objects": [identity(0), marked, bad]}))
    first = json.loads(kizuna(data_dir, "import", str(path), "--collection", "in", "--json", check=False).stdout)
    # The node adds the OASIS TLP 2.0 definitions, all five levels at once, and their extension definition: the
    # TLP:GREEN one is referred to; placing only it would tell readers which levels the collection holds.
    assert (first["total"], first["stored"], first["duplicates"], first["rejected"], first["added_by_node"]) == \
        (3, 2, 0, 1, 6)
    again = kizuna(data_dir, "import", str(path), "--collection", "in", check=False)
    assert again.returncode == 1  # the rejected object is still rejected
    assert "3 objects read: 0 stored, 2 already stored, 1 rejected" in again.stdout
    assert f"{path}:1: indicator--not-a-uuid:" in again.stdout
    assert again.stderr == "kizuna import: 1 object refused by ingest (listed above)\n"  # not "1 objects"
    assert count_in(data_dir, "in") == 8


def test_a_tlp_definition_the_input_carries_is_stored_not_already_stored_in_a_new_collection(
        data_dir: Path, tmp_path: Path) -> None:
    """The node places the OASIS TLP definitions before the objects that refer to them; the input's own copy of
    one (MISP imports carry the TLP:GREEN definition) then read "1 already stored" on a brand-new collection,
    which a newcomer could not account for. It is the input's, stored: the node counts the other five."""
    from kizuna.policy.tlp import TlpLevel, tlp2_marking_definition

    kizuna_json(data_dir, "collections", "create", "--title", "Fresh", "--alias", "fresh")
    marked = {**identity(1), "object_marking_refs": [TLP_GREEN]}
    path = tmp_path / "with-definition.json"
    path.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
                                "objects": [marked, tlp2_marking_definition(TlpLevel.GREEN)]}))
    first = kizuna(data_dir, "import", str(path), "--collection", "fresh")
    assert "2 objects read: 2 stored, 0 already stored, 0 rejected" in first.stdout
    assert "the node added 5 OASIS TLP 2.0 objects" in first.stdout
    again = kizuna_json(data_dir, "import", str(path), "--collection", "fresh")
    assert (again["stored"], again["duplicates"], again["added_by_node"]) == (0, 2, 0)
    assert count_in(data_dir, "fresh") == 7


def test_export_into_a_missing_directory_writes_nothing(data_dir: Path, tmp_path: Path) -> None:
    kizuna_json(data_dir, "collections", "create", "--title", "Out", "--alias", "out")
    target = tmp_path / "no-such-dir" / "export.json"
    for args in (("export", "--collection", "out", "-o", str(target)), ("audit", "export", "-o", str(target))):
        result = kizuna(data_dir, *args, check=False)
        assert result.returncode != 0, args
        assert result.stderr.count("\n") == 1 and "does not exist" in result.stderr, args
        assert result.stdout == ""
        error = json.loads(kizuna(data_dir, *args, "--json", check=False).stdout)["error"]
        assert error["file"] == str(target) and "does not exist" in error["message"]
    assert not target.parent.exists()


def test_export_replaces_the_file_whole_and_says_what_it_wrote(data_dir: Path, tmp_path: Path) -> None:
    kizuna_json(data_dir, "collections", "create", "--title", "Out", "--alias", "out")
    source = tmp_path / "in.json"
    source.write_text(json.dumps([identity(n) for n in range(5)]))
    said = kizuna(data_dir, "import", str(source), "--collection", "out").stdout
    assert "(collection out)" in said  # summaries name the collection as the operator does, not by its id
    target = tmp_path / "out" / "export.json"
    target.parent.mkdir()
    target.write_text("an older export")
    summary = kizuna_json(data_dir, "export", "--collection", "out", "-o", str(target))
    assert summary["objects"] == 5 and summary["path"] == str(target)
    assert summary["bytes"] == target.stat().st_size
    assert len(json.loads(target.read_text())["objects"]) == 5
    text = kizuna(data_dir, "export", "--collection", "out", "-o", str(target))
    assert f"Exported 5 objects ({target.stat().st_size} bytes) from out as stix" in text.stderr
    assert sorted(p.name for p in target.parent.iterdir()) == ["export.json"]  # no temporary file left
    # A failed export (no such collection) leaves the earlier file as it was.
    before = target.read_bytes()
    assert kizuna(data_dir, "export", "--collection", "nope", "-o", str(target), check=False).returncode != 0
    assert target.read_bytes() == before
    audit = kizuna_json(data_dir, "audit", "export", "-o", str(tmp_path / "out" / "audit.jsonl"))
    assert audit["records"] == len((tmp_path / "out" / "audit.jsonl").read_text().splitlines()) > 0


def _stderr_on_a_terminal(args: list[str], cwd: Path) -> tuple[int, bytes]:
    """Run kizuna with stderr on a pseudo-terminal; its exit status and what it drew there."""
    status, _, screen = run_on_a_terminal([sys.executable, "-m", "kizuna", *args], cwd)
    return status, screen.encode()


def test_progress_is_drawn_on_a_terminal_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    kizuna_json(data_dir, "init", "--org-name", "NCSC UK", "--country", "GBR")
    kizuna_json(data_dir, "collections", "create", "--title", "In", "--alias", "in")
    source = tmp_path / "in.json"
    source.write_text(json.dumps([identity(n) for n in range(200)]))
    base = ["--data", str(data_dir)]
    status, drawn = _stderr_on_a_terminal([*base, "import", str(source), "--collection", "in"], tmp_path)
    assert status == 0 and b"objects" in drawn and b"import in.json" in drawn
    status, drawn = _stderr_on_a_terminal([*base, "export", "--collection", "in", "-o", str(tmp_path / "o.json")],
                                          tmp_path)
    assert status == 0 and b"export in" in drawn and b"/200" in drawn  # done of total, for the ETA
    for quiet in ("--json", "--quiet"):
        status, drawn = _stderr_on_a_terminal([*base, "export", "--collection", "in", "-o", str(tmp_path / "q.json"),
                                               quiet], tmp_path)
        assert status == 0 and b"export in" not in drawn, quiet
    piped = kizuna(data_dir, "import", str(source), "--collection", "in")
    assert piped.stderr == ""  # not a terminal: no bar


def test_a_report_that_cannot_be_written_is_refused_before_anything_is_stored(data_dir: Path, tmp_path: Path) -> None:
    kizuna_json(data_dir, "collections", "create", "--title", "In", "--alias", "in")
    source = tmp_path / "one.txt"
    source.write_text("ip\n198.51.100.47\n")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for report, says in ((tmp_path / "missing" / "r.json", "does not exist"),
                         (a_file / "r.json", "is a file, not a directory")):
        result = kizuna(data_dir, "import", str(source), "--collection", "in", "--report", str(report), check=False)
        assert result.returncode != 0 and says in result.stderr and len(result.stderr.splitlines()) == 1
    assert count_in(data_dir, "in") == 0
