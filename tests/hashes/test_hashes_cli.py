"""`kizuna hash`, `kizuna hashes import` and `kizuna hashes match` as real processes on a real node:
bad inputs are named one per line and the rest is processed, matches come back one JSON line per
input, and matches become sightings of the signal in the node."""

from __future__ import annotations

import json
import secrets
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image

from kizuna.core.node import Node
from kizuna.hashes.hashing import hash_file
from kizuna.hashes.signals import EXTENSION_ID
from kizuna.policy.tlp import TLP2_IDS, TlpLevel
from tests.conftest import kizuna, kizuna_json, run_on_a_terminal

IMAGES = Path(__file__).parent.parent / "fixtures" / "pdq" / "images"
EXAMPLES = Path(__file__).parent.parent.parent / "examples" / "hashes"
LABEL = "terrorist-content/graphic-violence-against-defenseless-people"


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("hashes") / "node"
    kizuna_json(data, "init", "--org-name", "Home", "--country", "GBR")
    kizuna_json(data, "collections", "create", "--title", "TCAP bank", "--alias", "tcap")
    kizuna_json(data, "collections", "create", "--title", "Sightings", "--alias", "seen")
    return data


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_hash_prints_every_file_and_names_the_corrupt_one(tmp_path: Path) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    shutil.copy(IMAGES / "misc" / "small.jpg", folder / "a-small.jpg")
    shutil.copy(EXAMPLES / "bank-bridge.jpg", folder / "b-bridge.jpg")
    (folder / "c-corrupt.jpg").write_bytes((EXAMPLES / "bank-bridge.jpg").read_bytes()[:500])
    result = kizuna(tmp_path / "unused", "hash", str(folder), "--json", check=False)
    lines = _json_lines(result.stdout)
    assert result.returncode == 1 and len(lines) == 3  # every file reported; the corrupt one fails the run
    assert lines[0]["pdq_usable"] is False and lines[0]["quality"] < 50  # type: ignore[operator]
    assert lines[1]["pdq"] == hash_file(EXAMPLES / "bank-bridge.jpg").pdq and lines[1]["pdq_usable"] is True
    assert lines[2]["input"] == str(folder / "c-corrupt.jpg") and "corrupt image" in str(lines[2]["error"])
    text = kizuna(tmp_path / "unused", "hash", str(folder), check=False)
    assert text.returncode == 1 and text.stderr.splitlines() == [
        f"kizuna hash: corrupt image: Truncated File Read: {folder / 'c-corrupt.jpg'}",
        "kizuna hash: 1 of 3 inputs could not be used (listed above)",
    ]
    assert "(too low: not used)" in text.stdout


@pytest.mark.parametrize("command", [("hash",), ("hashes", "import", "--collection", "gaps"), ("hashes", "match")],
                         ids=["hash", "hashes import", "hashes match"])
def test_a_missing_file_is_named_like_a_corrupt_one_and_the_rest_is_processed(node_dir: Path, tmp_path: Path,
                                                                              command: tuple[str, ...]) -> None:
    if "import" in command:  # a bank of its own: the other tests hold tcap's signals to what they import
        kizuna_json(node_dir, "collections", "create", "--title", "Gaps", "--alias", "gaps")
    corrupt, missing, good = tmp_path / "a-corrupt.jpg", tmp_path / "b-nope.jpg", tmp_path / "c-ok.jpg"
    corrupt.write_bytes((EXAMPLES / "bank-bridge.jpg").read_bytes()[:500])
    shutil.copy(IMAGES / "labelme-subset" / "q2821.jpg", good)  # a picture the other tests neither bank nor match
    result = kizuna(node_dir, *command, str(corrupt), str(missing), str(good), check=False)
    said = result.stderr.splitlines()
    assert result.returncode == 1, result.stderr
    assert f"kizuna {' '.join(command[:2])}: No such file or directory: {missing}" in said, said
    assert any(str(corrupt) in line for line in said) and "Traceback" not in result.stderr
    if command == ("hash",):
        assert str(good) in result.stdout  # the file after the missing one was hashed
    elif command[1] == "import":
        assert "1 signal" in result.stdout or "signals into gaps" in result.stdout, result.stdout
    else:
        assert "3 inputs" in result.stderr, result.stderr
    alone = kizuna(node_dir, *command, str(missing), "--json", check=False)  # nothing else: one error object
    assert alone.returncode == 1 and json.loads(alone.stdout)["error"]["file"] == str(missing)


def test_one_signal_and_one_rejected_input_are_counted_in_the_singular(node_dir: Path, tmp_path: Path) -> None:
    listing = tmp_path / "one.txt"
    listing.write_text(f"md5:{secrets.token_hex(16)}\nmd5:nothex\n")
    kizuna_json(node_dir, "collections", "create", "--title", "One signal", "--alias", "one")  # the others' banks stay
    result = kizuna(node_dir, "hashes", "import", str(listing), "--collection", "one", check=False)
    assert result.returncode == 1
    assert result.stdout.startswith("1 signal into one ") and ", 1 input rejected, 0 refused" in result.stdout
    assert result.stderr.splitlines()[-1] == "kizuna hashes import: 1 input rejected, 0 signals refused (listed above)"


def test_import_names_bad_lines_stores_the_rest_as_marked_signals_and_matches(node_dir: Path, tmp_path: Path) -> None:
    bridge = hash_file(EXAMPLES / "bank-bridge.jpg")
    assert bridge.pdq is not None
    listing = tmp_path / "bank.txt"
    listing.write_text(f"{bridge.pdq}\nzz{bridge.pdq[2:]}\n{bridge.pdq[:40]}\nmd5:{bridge.md5}\n")
    result = kizuna(node_dir, "hashes", "import", str(listing), "--collection", "tcap", "--label", LABEL,
                    "--tlp", "amber", check=False)
    assert result.returncode == 1, result.stderr  # the good lines are stored; the bad ones fail the run
    assert result.stderr.splitlines() == [
        f"kizuna hashes import: pdq hash 'zz{bridge.pdq[2:]}' is not hexadecimal: {listing}:2",
        f"kizuna hashes import: pdq hash has 40 hex digits, not 64: {listing}:3",
        "kizuna hashes import: 2 inputs rejected, 0 signals refused (listed above)",
    ]
    node = Node.open(node_dir)
    try:
        stored = [json.loads(b) for b in node.export_objects(node.find_collection("tcap"))]
    finally:
        node.close()
    signals = [o for o in stored if o["type"] == "indicator"]
    assert sorted(s["extensions"][EXTENSION_ID]["hash"] for s in signals) == sorted([bridge.pdq, bridge.md5])
    assert all(s["labels"] == [LABEL] and s["object_marking_refs"] == [TLP2_IDS[TlpLevel.AMBER]] for s in signals)
    assert any(o["id"] == EXTENSION_ID for o in stored)

    uploads = [EXAMPLES / "upload-bridge-shrunk.jpg", EXAMPLES / "upload-unrelated.jpg", listing]
    matched = kizuna(node_dir, "hashes", "match", *map(str, uploads), "--sightings-to", "seen", "--json",
                     check=False)
    lines = _json_lines(matched.stdout)
    assert matched.returncode == 1  # the listing's two bad lines; the pictures are matched and reported
    shrunk, unrelated = lines[0], lines[1]
    assert [m["hash"] for m in shrunk["matches"]] == [bridge.pdq]  # type: ignore[index]
    near = shrunk["matches"][0]  # type: ignore[index]
    assert 0 < near["distance"] <= 31 and near["bank"] == "tcap" and near["labels"] == [LABEL]
    assert unrelated["matches"] == []
    by_input = {line["input"]: line for line in lines[2:]}
    assert by_input[f"{listing}:1"]["matches"][0]["distance"] == 0  # type: ignore[index]
    assert "not hexadecimal" in str(by_input[f"{listing}:2"]["error"])
    node = Node.open(node_dir)
    try:
        seen = [json.loads(b) for b in node.export_objects(node.find_collection("seen"))]
    finally:
        node.close()
    sighted = {s["sighting_of_ref"]: s["count"] for s in seen if s["type"] == "sighting"}
    # The shrunk image and the PDQ line of the list both matched the PDQ signal; the md5 line its own.
    assert sighted[near["signal"]] == 2 and len(sighted) == 2

    strict = kizuna(node_dir, "hashes", "match", str(EXAMPLES / "upload-bridge-shrunk.jpg"), "--threshold", "5",
                    "--json")
    assert _json_lines(strict.stdout)[0]["matches"] == []
    # Without --sightings-to the sightings are counted, and the summary says they were not stored.
    unstored = kizuna(node_dir, "hashes", "match", str(EXAMPLES / "upload-bridge-shrunk.jpg")).stderr
    assert unstored.strip().endswith("1 sightings (not stored: --sightings-to COLLECTION stores them)"), unstored
    # A person at a terminal sees the inputs go by; -q (as --json) turns that off, the matches stay on stdout.
    for quiet in ((), ("-q",)):
        status, out, screen = run_on_a_terminal([sys.executable, "-m", "kizuna", "--data", str(node_dir), "hashes",
                                                 "match", *map(str, uploads[:2]), *quiet], node_dir.parent)
        assert status == 0 and "upload-bridge-shrunk.jpg: 1 match(es)" in out
        assert ("/?" in screen and "\rmatch " in screen) is not bool(quiet), screen  # the bar: inputs done of ?

    # A verdict on the signal is a STIX opinion under the signal's own markings, stored in the bank.
    verdict = kizuna_json(node_dir, "hashes", "opinion", str(near["signal"]), "--verdict", "false-positive",
                          "--collection", "tcap", "--comment", "a bridge")
    node = Node.open(node_dir)
    try:
        stored_opinions = [o for o in map(json.loads, node.export_objects(node.find_collection("tcap")))
                           if o["type"] == "opinion"]
    finally:
        node.close()
    assert [(o["id"], o["opinion"], o["object_refs"], o["object_marking_refs"]) for o in stored_opinions] == [
        (verdict["id"], "strongly-disagree", [near["signal"]], [TLP2_IDS[TlpLevel.AMBER]])]


def test_nothing_usable_fails_with_one_line(node_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("indicator_type,indicator\nHASH_PDQ,1234\n")
    result = kizuna(node_dir, "hashes", "import", str(bad), "--collection", "tcap", check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"kizuna hashes import: nothing imported: pdq hash has 4 hex digits, not 64: {bad}:2"]
    as_json = kizuna(node_dir, "hashes", "import", str(bad), "--collection", "tcap", "--json", check=False)
    assert {k: json.loads(as_json.stdout)["error"][k] for k in ("file", "line")} == {"file": str(bad), "line": 2}
    label = kizuna(node_dir, "hashes", "import", str(bad), "--collection", "tcap", "--label", "Not A Label!",
                   check=False)
    assert label.returncode == 2 and len(label.stderr.splitlines()) == 1


def test_one_shared_bank_per_collection_filtered_per_caller(tmp_path: Path) -> None:
    from kizuna.hashes.banks import Banks
    from kizuna.hashes.signals import PDQ

    data = tmp_path / "node"
    kizuna_json(data, "init", "--org-name", "Home", "--country", "GBR")
    bank_id = kizuna_json(data, "collections", "create", "--title", "Bank", "--alias", "bank")["id"]
    kizuna_json(data, "orgs", "create", "Partner", "--country", "JPN")
    home_token = kizuna_json(data, "tokens", "create", "--org", "Home", "--read", bank_id)["token"]
    partner_token = kizuna_json(data, "tokens", "create", "--org", "Partner", "--read", bank_id)["token"]
    red, clear = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22", "3c" * 32
    for digest, tlp in ((red, "red"), (clear, "clear")):
        listing = tmp_path / f"{tlp}.txt"
        listing.write_text(digest + "\n")
        kizuna(data, "hashes", "import", str(listing), "--collection", "bank", "--tlp", tlp)
    node = Node.open(data)
    try:
        home, partner = node.authenticate(home_token), node.authenticate(partner_token)
        assert home is not None and partner is not None
        banks = Banks(node)
        bank = node.find_collection("bank")
        lookups = [(PDQ, red[:-2] + "00"), (PDQ, clear)]
        own = banks.match_many(home, [bank], lookups, 31)
        theirs = banks.match_many(partner, [bank], lookups, 31)
        assert [[m.hash for m in found] for found in own] == [[red], [clear]]
        # The TLP:RED signal is a candidate in the shared index, but never leaves for the partner.
        assert [[m.hash for m in found] for found in theirs] == [[], [clear]]
        assert banks.match_many(partner, [bank], [(PDQ, "00" * 32)], 31) == [[]]
        assert list(banks._banks) == [bank.pk] and len(banks._banks[bank.pk].pdq.index) == 2  # one index, shared
    finally:
        node.close()


def test_a_picture_too_plain_for_pdq_banks_its_exact_hashes_and_the_import_succeeds(node_dir: Path,
                                                                                      tmp_path: Path) -> None:
    """Its MD5 and SHA-256 are banked as asked: a note, not a rejected input (the run exits 0)."""
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), "white").save(blank)
    result = kizuna(node_dir, "hashes", "import", str(blank), "--collection", "tcap", "--json")
    imported = json.loads(result.stdout)
    assert result.returncode == 0 and imported["signals"] == 2 and imported["rejected"] == []
    assert imported["notes"] == [{"where": str(blank), "reason": "PDQ quality 0 is below 50: only exact hashes banked"}]


def test_a_label_that_is_no_taxonomy_path_is_named_as_it_was_typed(node_dir: Path) -> None:
    refused = kizuna(node_dir, "hashes", "import", str(EXAMPLES / "bank-bridge.jpg"), "--collection", "tcap",
                     "--label", "Bad Label", check=False)
    assert refused.returncode == 2 and refused.stderr.startswith("kizuna hashes import: --label 'Bad Label' is not")


def test_importing_a_banked_hash_again_versions_it_only_when_it_changes(node_dir: Path, tmp_path: Path) -> None:
    from kizuna.stix.timestamps import parse_timestamp
    from kizuna.store.base import VersionQuery, VersionSelector

    kizuna_json(node_dir, "collections", "create", "--title", "Again", "--alias", "again")
    bridge = hash_file(EXAMPLES / "bank-bridge.jpg")
    md5_list = tmp_path / "md5.txt"
    md5_list.write_text(f"md5:{bridge.md5}\n")
    other = "terrorist-content/attacker-manifesto"

    def imported(*args: str) -> dict[str, int]:
        found = kizuna_json(node_dir, "hashes", "import", *args, "--collection", "again")
        return {key: found[key] for key in ("signals", "stored", "unchanged")}

    def versions() -> dict[str, list[dict[str, object]]]:
        node = Node.open(node_dir)
        try:
            bank = node.find_collection("again")
            rows = node.store.query_versions(VersionQuery(bank.pk, types=("indicator",),
                                                          versions=VersionSelector(all=True)))
        finally:
            node.close()
        found: dict[str, list[dict[str, object]]] = {}
        for row in sorted(rows, key=lambda row: row.version):
            obj = json.loads(row.body)
            found.setdefault(obj["extensions"][EXTENSION_ID]["hash"], []).append(obj)
        return found

    picture = str(EXAMPLES / "bank-bridge.jpg")
    assert imported(picture, "--label", LABEL, "--tlp", "amber") == {"signals": 3, "stored": 3, "unchanged": 0}
    # The same import again, and the hash alone without label or TLP: nothing new to say, no new version.
    assert imported(picture, "--label", LABEL, "--tlp", "amber") == {"signals": 3, "stored": 0, "unchanged": 3}
    assert imported(str(md5_list)) == {"signals": 1, "stored": 0, "unchanged": 1}
    assert all(len(kept) == 1 for kept in versions().values())
    # Another label, then another TLP: each a next version keeping what the last one said and when it was created.
    assert imported(str(md5_list), "--label", other) == {"signals": 1, "stored": 1, "unchanged": 0}
    assert imported(str(md5_list), "--tlp", "green") == {"signals": 1, "stored": 1, "unchanged": 0}
    first, labelled, green = versions()[bridge.md5]
    assert labelled["labels"] == green["labels"] == sorted([LABEL, other])
    assert first["object_marking_refs"] == labelled["object_marking_refs"] == [TLP2_IDS[TlpLevel.AMBER]]
    assert green["object_marking_refs"] == [TLP2_IDS[TlpLevel.GREEN]]
    assert first["created"] == labelled["created"] == green["created"]  # STIX 2.1, 3.2: created never changes
    stamps = [parse_timestamp(str(version["modified"])) for version in (first, labelled, green)]
    assert stamps == sorted(set(stamps))
    assert len(versions()[bridge.pdq or ""]) == 1


def test_when_every_input_is_bad_each_is_named(node_dir: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("zz\n")
    second.write_text("abc\n")
    for command, last in (("import", "nothing imported: 2 inputs rejected (listed above)"),
                          ("match", "none of the 2 inputs could be used (listed above)")):
        args = ("hashes", command, str(first), str(second), *(("--collection", "tcap") if command == "import" else ()))
        result = kizuna(node_dir, *args, check=False)
        assert result.returncode == 1 and result.stderr.splitlines() == [
            f"kizuna hashes {command}: pdq hash 'zz' is not hexadecimal: {first}:1",
            f"kizuna hashes {command}: pdq hash has 3 hex digits, not 64: {second}:1",
            f"kizuna hashes {command}: {last}"]
        error = json.loads(kizuna(node_dir, *args, "--json", check=False).stdout)["error"]
        assert "2 inputs" in error["message"] and (error["file"], error["line"]) == (str(first), 1)


def test_a_quote_left_open_in_a_csv_rejects_its_line_and_the_lines_after_it_are_imported(node_dir: Path,
                                                                                         tmp_path: Path) -> None:
    """The CSV is read line by line, as `kizuna import` reads one: the open quote does not run on to the end."""
    first, second = "5a" * 32, "a5" * 32
    listing = tmp_path / "open-quote.csv"
    listing.write_text(f'signal_value,signal_type\n"{first},HASH_PDQ\n{first},HASH_PDQ\n{second},HASH_PDQ\n')
    result = kizuna(node_dir, "hashes", "import", str(listing), "--collection", "tcap", "--json", check=False)
    imported = json.loads(result.stdout)
    assert result.returncode == 1 and (imported["signals"], imported["stored"]) == (2, 2)
    assert imported["rejected"] == [{"where": f"{listing}:2", "reason": "malformed CSV: unexpected end of data"}]


def test_a_csv_quality_is_a_whole_number_from_0_to_100_and_below_50_is_not_banked(node_dir: Path,
                                                                                  tmp_path: Path) -> None:
    """docs/hashes.md: a PDQ hash below quality 50 matches too much, so it is never banked or matched."""
    kizuna_json(node_dir, "collections", "create", "--title", "Quality", "--alias", "quality")
    plain, good, high, negative, word = ("6b" * 32, "6c" * 32, "6d" * 32, "6e" * 32, "6f" * 32)
    listing = tmp_path / "quality.csv"
    listing.write_text(f"signal_value,signal_type,quality\n{plain},HASH_PDQ,10\n{good},HASH_PDQ,50\n"
                       f"{high},HASH_PDQ,1000\n{negative},HASH_PDQ,-5\n{word},HASH_PDQ,good\n")
    result = kizuna(node_dir, "hashes", "import", str(listing), "--collection", "quality", "--json", check=False)
    imported = json.loads(result.stdout)
    assert result.returncode == 1 and imported["signals"] == 1
    assert imported["notes"] == [{"where": f"{listing}:2", "reason": "PDQ quality 10 is below 50: too plain to bank "
                                                                     "or match"}]
    assert imported["rejected"] == [
        {"where": f"{listing}:{n}", "reason": f"quality {text!r} is not a whole number from 0 to 100"}
        for n, text in ((4, "1000"), (5, "-5"), (6, "good"))]
    text = kizuna(node_dir, "hashes", "import", str(listing), "--collection", "quality", check=False).stderr
    assert f"  note: PDQ quality 10 is below 50: too plain to bank or match: {listing}:2" in text.splitlines()
    matched = _json_lines(kizuna(node_dir, "hashes", "match", str(listing), "--collection", "quality", "--json",
                                 check=False).stdout)
    assert [line.get("error") or len(line["matches"]) for line in matched[:2]] == [  # type: ignore[arg-type]
        "PDQ quality 10 is below 50: too plain to bank or match", 1]


def test_an_unknown_hash_type_a_csv_without_a_hash_column_and_bad_vpdq_timestamps_are_named_as_such(
        node_dir: Path, tmp_path: Path) -> None:
    """Each is said for what it is (docs/hashes.md), not as a PDQ hash that "is not hexadecimal"."""
    frame = "7a" * 32
    sha1, columns, video = tmp_path / "sha1.txt", tmp_path / "columns.csv", tmp_path / "video.vpdq"
    sha1.write_text(f"sha1:{'1' * 40}\nvpdq:{frame}\n")
    columns.write_text(f"foo,bar\n{frame},1\n{frame},2\n")
    video.write_text(f"0,100,{frame},nan\n1,100,{frame},-5\n2,100,{frame},1e308\n")
    said = {path: kizuna(node_dir, "hashes", "import", str(path), "--collection", "tcap", check=False)
            for path in (sha1, columns, video)}
    assert all(result.returncode == 1 for result in said.values())
    assert said[sha1].stderr.splitlines() == [
        f"kizuna hashes import: unknown hash type 'sha1' (pdq, md5, sha256, vpdq): {sha1}:1",
        "kizuna hashes import: a vPDQ hash is a file of 'frame,quality,pdq_hex,timestamp' lines, not one line: "
        f"{sha1}:2", "kizuna hashes import: nothing imported: 2 inputs rejected (listed above)"]
    assert said[columns].stderr.splitlines() == [
        "kizuna hashes import: nothing imported: a CSV's header must name its hash column (hash, signal, signal_value, "
        "indicator, pdq, md5, sha256); the columns understood besides are the type (hash_type, signal_type, "
        f"indicator_type, type), labels (labels, tags, category, categories) and quality: {columns}:1"]
    assert said[video].stderr.splitlines() == [
        *(f"kizuna hashes import: vPDQ frame timestamp {stamp!r} is not seconds from the start (digits, like 12.000): "
          f"{video}:{n}" for n, stamp in ((1, "nan"), (2, "-5"), (3, "1e308"))),
        "kizuna hashes import: nothing imported: 3 inputs rejected (listed above)"]


@pytest.mark.parametrize(("command", "option"), [("import", "--collection"), ("match", "--collection"),
                                                 ("match", "--sightings-to")])
def test_an_empty_collection_is_a_usage_error(node_dir: Path, tmp_path: Path, command: str, option: str) -> None:
    listing = tmp_path / "one.txt"
    listing.write_text("7b" * 32 + "\n")
    args = ("hashes", command, str(listing), *(("--collection", "tcap") if option != "--collection" else ()))
    result = kizuna(node_dir, *args, option, "", check=False)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [f"kizuna hashes {command}: {option} is empty: give a collection id or alias"]
    as_json = kizuna(node_dir, *args, option, " ", "--json", check=False)
    assert as_json.returncode == 2 and json.loads(as_json.stdout)["error"]["code"] == "usage"
