"""POST /{api_root}/hashes/match over HTTP with real tokens on both backends: a caller matches only
the banks and signals it may read, a TLP:RED signal is never matched for a principal who may not see
it, a hidden bank answers exactly like an absent one, and a new signal matches without a rebuild."""

from __future__ import annotations

import functools
import json
import random
import time
from pathlib import Path
from typing import Any

import requests

from kizuna.hashes.hashing import hash_file
from kizuna.hashes.signals import PDQ, VPDQ, make_signal, parse_frames
from kizuna.policy.tlp import TLP2_IDS, TlpLevel
from tests.conftest import TAXII, Node, kizuna_json
from tests.hashes.videos import make_videos

EXAMPLES = Path(__file__).parent.parent.parent / "examples" / "hashes"
RED_HASH = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
CLEAR_HASH = "54a977c221d14c1c43ba5e4e21d4a13989a3553f1462611cbb87fda7be83b677"
OTHER_HASH = "992d44af36d69e6ca6b812485928bac11def254ef539ac6d07466c9abcc65b92"


@functools.cache
def _producer_of(data_dir: Path) -> str:
    orgs = kizuna_json(data_dir, "orgs", "list")["organisations"]
    return str(next(o["id"] for o in orgs if o["name"] == "NCSC UK"))


def _producer(node: Node) -> str:
    return _producer_of(node.data_dir)  # one CLI run per node, not one per signal


def _signal(node: Node, digest: str, level: TlpLevel, label: str = "graphic-violence") -> dict[str, Any]:
    return make_signal(PDQ, digest, producer=_producer(node), labels=[label], markings=[TLP2_IDS[level]],
                       quality=100)


def _match(node: Node, token: str, hashes: list[str], **params: str) -> requests.Response:
    return node.session(token).post(f"{node.api_root}hashes/match", json={"hashes": hashes}, params=params)


def _near(digest: str, bits: int) -> str:
    value = int(digest, 16) ^ ((1 << bits) - 1)  # flip the lowest `bits` bits
    return f"{value:064x}"


def test_visibility_of_banks_and_signals(node: Node) -> None:
    red = _signal(node, RED_HASH, TlpLevel.RED)
    clear = _signal(node, CLEAR_HASH, TlpLevel.CLEAR)
    node.post([red, clear])
    node.post([_signal(node, OTHER_HASH, TlpLevel.CLEAR)], collection=node.other_collection)
    queries = [_near(RED_HASH, 20), _near(CLEAR_HASH, 3), OTHER_HASH]

    own = _match(node, "writer", queries)
    assert own.status_code == 200, own.text
    assert [[m["distance"] for m in r["matches"]] for r in own.json()["results"]] == [[20], [3], [0]]
    assert own.json()["results"][0]["matches"][0]["signal"] == red["id"]

    # JPCERT reads "shared" but may not see NCSC's TLP:RED signal, and may not read "other".
    theirs = _match(node, "reader", queries).json()["results"]
    assert [r["matches"] for r in theirs][0] == [] and theirs[2]["matches"] == []
    assert theirs[1]["matches"][0]["signal"] == clear["id"]
    assert theirs[1]["matches"][0]["labels"] == ["graphic-violence"]
    # The hidden signal's answer is the answer for a hash nobody holds.
    nobody = _match(node, "reader", [_near(RED_HASH, 20)]).json()["results"]
    assert theirs[0] == nobody[0]
    assert str(red["id"]) not in str(_match(node, "reader", queries).text)

    # A bank the token may not see is a 404 identical to a bank that does not exist.
    hidden = _match(node, "reader", queries, collection=node.other_collection)
    absent = _match(node, "reader", queries, collection="00000000-0000-4000-8000-000000000000")
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json() == absent.json()


def test_a_new_signal_matches_at_once_and_matches_become_sightings(node: Node) -> None:
    fresh = "0123456789abcdef" * 4
    assert _match(node, "writer", [fresh]).json()["results"][0]["matches"] == []  # the bank is built
    signal = _signal(node, fresh, TlpLevel.GREEN)
    started = time.monotonic()
    node.post([signal])
    answer = _match(node, "writer", [_near(fresh, 31), _near(fresh, 32)], store="shared").json()
    assert time.monotonic() - started < 5
    assert [len(r["matches"]) for r in answer["results"]] == [1, 0]
    assert answer["stored"]["success_count"] == 1
    sighting = answer["sightings"][0]
    assert sighting["sighting_of_ref"] == signal["id"] and sighting["count"] == 1
    stored = node.session("writer").get(node.collection_url() + "objects/", params={"match[id]": sighting["id"]})
    assert stored.json()["objects"][0]["sighting_of_ref"] == signal["id"]
    # Storing needs write access, as any TAXII add does.
    assert _match(node, "reader", [fresh], store="shared").status_code == 403


def test_images_and_bad_input(node: Node) -> None:
    bridge = hash_file(EXAMPLES / "bank-bridge.jpg")
    assert bridge.pdq is not None
    node.post([_signal(node, bridge.pdq, TlpLevel.CLEAR, "terrorist-content/imminent-credible-threat")])
    upload = (EXAMPLES / "upload-bridge-shrunk.jpg").read_bytes()
    answer = node.session("reader").post(f"{node.api_root}hashes/match", data=upload,
                                         headers={"Content-Type": "image/jpeg"})
    assert answer.status_code == 200, answer.text
    result = answer.json()["results"][0]
    assert result["matches"][0]["hash"] == bridge.pdq and result["matches"][0]["distance"] <= 31
    assert result["matches"][0]["labels"] == ["terrorist-content/imminent-credible-threat"]

    corrupt = node.session("reader").post(f"{node.api_root}hashes/match", data=upload[:300],
                                          headers={"Content-Type": "image/jpeg"})
    assert "corrupt image" in corrupt.json()["results"][0]["error"]
    mixed = _match(node, "reader", ["abc", bridge.pdq]).json()["results"]
    assert "3 hex digits" in mixed[0]["error"] and mixed[1]["matches"]
    # Each item is one input, numbered from 1 in its list; a bad one is its own error, the others are answered.
    odd = node.session("reader").post(f"{node.api_root}hashes/match",
                                      json={"hashes": [5, "", bridge.pdq], "videos": ["0,100,zz,0.0"]})
    assert odd.status_code == 200, odd.text
    assert [(r["input"], r.get("error"), len(r.get("matches", []))) for r in odd.json()["results"]] == [
        ("hashes:1", "a hash must be a string, not 5", 0), ("hashes:2", "no hash: the item is empty", 0),
        ("hashes:3", None, 1), ("videos:1:1", "not a vPDQ frame line 'frame,quality,pdq_hex,timestamp'", 0)]
    for params in ({"threshold": "abc"}, {"threshold": "300"}, {"threshold": "²"}, {"colour": "red"},
                   {"query_match": "nan"}, {"target_match": "101"}):
        bad = _match(node, "reader", [bridge.pdq], **params)
        assert bad.status_code == 400 and bad.headers["Content-Type"].startswith(TAXII.split(";")[0])
    # An option put in the body, or any other key, is refused: it was ignored, and the match ran at threshold 31.
    for body, named in (({"hashes": [bridge.pdq], "threshold": -4}, "threshold is a query parameter"),
                        ({"hashes": [bridge.pdq], "threshold": 10}, "threshold is a query parameter"),
                        ({"videos": [], "hashes": [bridge.pdq], "colour": "red"}, "unknown field 'colour'"),
                        ({"hashes": bridge.pdq}, "a JSON body must be")):
        bad = node.session("reader").post(f"{node.api_root}hashes/match", json=body)
        assert bad.status_code == 400 and named in bad.json()["description"], (body, bad.text)
        assert bad.headers["Content-Type"].startswith(TAXII.split(";")[0])
    no_token = requests.post(f"{node.api_root}hashes/match", json={"hashes": [bridge.pdq]},
                             headers={"Accept": TAXII})
    assert no_token.status_code == 401


def test_a_signal_of_pdq_quality_below_50_never_matches(node: Node) -> None:
    """Whoever banked it (a partner's node, an older import): too plain a picture matches too much (docs/hashes.md)."""
    plain, usable = "5c" * 32, "c5" * 32
    node.post([make_signal(PDQ, plain, producer=_producer(node), labels=[], markings=[], quality=10),
               make_signal(PDQ, usable, producer=_producer(node), labels=[], markings=[], quality=50)])
    results = _match(node, "writer", [plain, _near(plain, 2), usable], across="true").json()["results"]
    assert [len(r["matches"]) for r in results] == [0, 0, 1]


def test_a_video_matches_a_vpdq_signal_and_a_red_one_stays_hidden(node: Node, tmp_path: Path) -> None:
    videos = make_videos(tmp_path)
    banked = hash_file(videos["banked"]).vpdq
    assert banked is not None
    signal = make_signal(VPDQ, banked, producer=_producer(node), labels=["graphic-violence"],
                         markings=[TLP2_IDS[TlpLevel.RED]])
    node.post([signal])

    def upload(token: str, name: str) -> dict[str, Any]:
        answer = node.session(token).post(f"{node.api_root}hashes/match", data=videos[name].read_bytes(),
                                          headers={"Content-Type": "video/mp4"})
        assert answer.status_code == 200, answer.text
        return dict(answer.json()["results"][0])

    mine = upload("writer", "reencoded")
    assert [m["signal"] for m in mine["matches"]] == [signal["id"]]
    assert mine["matches"][0]["distance"] <= 31 and mine["matches"][0]["query_match_percent"] == 100.0
    assert upload("writer", "other")["matches"] == []
    strict = node.session("writer").post(f"{node.api_root}hashes/match", data=videos["reencoded"].read_bytes(),
                                         params={"threshold": "5"}, headers={"Content-Type": "video/mp4"})
    assert strict.json()["results"][0]["matches"] == []  # the frames are further apart than 5 bits
    # JPCERT may not see the TLP:RED video signal: its answer is the answer for a video nobody holds.
    theirs = upload("reader", "reencoded")
    assert theirs["matches"] == [] and signal["id"] not in str(theirs)


def test_revoked_and_deleted_signals_stop_matching_at_once(node: Node) -> None:
    revoked_hash, deleted_hash = "13" * 32, "5a" * 32
    revoked = _signal(node, revoked_hash, TlpLevel.CLEAR)
    deleted = _signal(node, deleted_hash, TlpLevel.CLEAR)
    node.post([revoked, deleted])
    queries = [_near(revoked_hash, 7), _near(deleted_hash, 7)]
    for token in ("reader", "writer"):
        before = _match(node, token, queries).json()["results"]
        assert [[m["signal"] for m in r["matches"]] for r in before] == [[revoked["id"]], [deleted["id"]]]

    node.post([{**revoked, "modified": "2031-01-01T00:00:00.000Z", "revoked": True}])
    gone = node.session("writer").delete(node.collection_url() + f"objects/{deleted['id']}/")
    assert gone.status_code == 200, gone.text
    for token in ("reader", "writer"):  # the next request already misses both, for every caller
        after = _match(node, token, queries).json()["results"]
        assert [r["matches"] for r in after] == [[], []]


def test_a_newer_version_the_caller_may_not_see_neither_stops_its_match_nor_shows(node: Node) -> None:
    digest = "c3" * 32
    signal = _signal(node, digest, TlpLevel.CLEAR)
    node.post([signal])
    query = [_near(digest, 5)]
    before = _match(node, "reader", query).json()
    assert [m["signal"] for m in before["results"][0]["matches"]] == [signal["id"]]

    # A new version under TLP:RED: JPCERT may not see it, so to JPCERT it is absent, and the TLP:CLEAR
    # version is still its newest (docs/policy.md, "Each principal sees its own history"): TAXII serves
    # that version, and the match answers exactly as before the RED version was stored.
    red = {**signal, "modified": "2031-01-01T00:00:00.000Z", "object_marking_refs": [TLP2_IDS[TlpLevel.RED]]}
    node.post([red])
    served = node.session("reader").get(node.collection_url() + f"objects/{signal['id']}/").json()["objects"]
    assert [o["modified"] for o in served] == [signal["modified"]]
    after = _match(node, "reader", query).json()
    assert after["results"] == before["results"]
    assert after["results"][0]["matches"][0]["labels"] == ["graphic-violence"]
    assert "2031" not in str(after)
    mine = _match(node, "writer", query).json()["results"][0]["matches"]
    assert [m["signal"] for m in mine] == [signal["id"]]  # the producer matches its newest, RED version

    # Revoked in a version JPCERT may see: it stops matching for everyone at the next request.
    node.post([{**signal, "modified": "2032-01-01T00:00:00.000Z", "revoked": True}])
    for token in ("reader", "writer"):
        assert _match(node, token, query).json()["results"][0]["matches"] == []


SAMPLES = Path(__file__).parent.parent / "fixtures" / "vpdq"


def _compact(text: str) -> list[str]:
    """A vPDQ text in ThreatExchange's signal form: ``pdq_hex,quality,timestamp`` strings, no frame numbers."""
    return [f"{f.hash},{f.quality},{f.timestamp:.3f}" for f in parse_frames(text)]


def test_videos_sent_as_vpdq_data_match_and_a_red_bank_stays_hidden(node: Node) -> None:
    banked = (SAMPLES / "chair-orig-22-sd-bar.txt").read_text()
    signal = make_signal(VPDQ, banked, producer=_producer(node), labels=["graphic-violence"],
                         markings=[TLP2_IDS[TlpLevel.RED]])
    node.post([signal])
    near, other = (SAMPLES / "chair-22-sd-grey-bar.txt").read_text(), (SAMPLES / "doorknob-hd-no-bar.txt").read_text()

    def send(token: str, body: Any) -> requests.Response:
        return node.session(token).post(f"{node.api_root}hashes/match", json=body)

    answer = send("writer", {"videos": [near, _compact(near), json.dumps(_compact(near)), other, ["no,such"]]})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [[m["signal"] for m in r.get("matches", [])] for r in results[:4]] == [[signal["id"]]] * 3 + [[]]
    assert results[0]["matches"][0]["query_match_percent"] >= 80
    assert results[4]["input"] == "videos:5:1" and "pdq_hex,quality,timestamp" in results[4]["error"]
    # Hashes and videos in one body; JPCERT may not see the TLP:RED video: the answer of an unknown video.
    theirs = send("reader", {"hashes": ["7e" * 32], "videos": [near]})
    assert theirs.status_code == 200 and [r["matches"] for r in theirs.json()["results"]] == [[], []]
    assert signal["id"] not in theirs.text
    for bad in ({"videos": "not a list"}, {"hashes": [], "videos": []}, {}):
        refused = send("writer", bad)
        assert refused.status_code == 400 and "videos" in refused.json()["description"]


def _video_text(frames: list[str]) -> str:
    """A vPDQ text (``frame,quality,pdq_hex,timestamp``), one frame a second, all of full quality."""
    return "\n".join(f"{n},100,{frame},{n}.000" for n, frame in enumerate(frames))


def test_across_types_an_image_matches_a_banked_videos_frame_and_a_videos_frame_a_banked_image(
        node: Node, tmp_path: Path) -> None:
    rng = random.Random(2027)
    fresh = [f"{rng.getrandbits(256):064x}" for _ in range(12)]
    still, image, hidden_still = fresh[2], fresh[5], fresh[9]
    banked_video = make_signal(VPDQ, _video_text(fresh[0:4]), producer=_producer(node), labels=["graphic-violence"],
                               markings=[TLP2_IDS[TlpLevel.CLEAR]])
    red_video = make_signal(VPDQ, _video_text(fresh[8:11]), producer=_producer(node), labels=["graphic-violence"],
                            markings=[TLP2_IDS[TlpLevel.RED]])
    banked_image = _signal(node, image, TlpLevel.CLEAR)
    node.post([banked_video, red_video, banked_image])

    # An image near the video's third frame: nothing by default; across types, the video, naming the frame.
    assert _match(node, "writer", [_near(still, 5)]).json()["results"][0]["matches"] == []
    found = _match(node, "writer", [_near(still, 5)], across="true").json()["results"][0]["matches"]
    assert [(m["signal"], m["distance"], m["frame"]["of"], m["frame"]["number"], m["frame"]["hash"])
            for m in found] == [(banked_video["id"], 5, "signal", 2, still)]

    # A video whose third frame is near the banked image: the image, naming the query's frame.
    query = _video_text([fresh[6], fresh[7], _near(image, 4), fresh[11]])

    def videos(token: str, **params: str) -> list[dict[str, Any]]:
        answer = node.session(token).post(f"{node.api_root}hashes/match", json={"videos": [query]}, params=params)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["results"][0]["matches"])

    assert videos("writer") == []
    assert [(m["signal"], m["distance"], m["frame"]["of"], m["frame"]["number"])
            for m in videos("writer", across="true")] == [(banked_image["id"], 4, "query", 2)]

    # JPCERT may not see the TLP:RED video: across types it answers as for a frame nobody holds.
    mine = _match(node, "writer", [hidden_still], across="true").json()["results"][0]["matches"]
    assert [m["signal"] for m in mine] == [red_video["id"]]
    theirs = _match(node, "reader", [hidden_still], across="true")
    nobody = _match(node, "reader", [fresh[1][::-1]], across="true")
    assert theirs.json()["results"][0]["matches"] == nobody.json()["results"][0]["matches"] == []
    assert red_video["id"] not in theirs.text

    refused = _match(node, "writer", [still], across="yes")
    assert refused.status_code == 400 and "across" in refused.json()["description"]

    # The command does the same with --across-types.
    listed = tmp_path / "stills.txt"
    listed.write_text(_near(still, 3) + "\n")
    line = kizuna_json(node.data_dir, "hashes", "match", str(listed), "--across-types")
    assert [(m["signal"], m["distance"], m["frame"]["number"]) for m in line["matches"]] == [(banked_video["id"], 3, 2)]
    assert kizuna_json(node.data_dir, "hashes", "match", str(listed))["matches"] == []


def _opinion(node: Node, token: str, **fields: Any) -> requests.Response:
    return node.session(token).post(f"{node.api_root}hashes/opinions", json=fields)


def test_a_partner_records_a_verdict_on_a_matched_signal_and_a_hidden_one_is_absent(node: Node) -> None:
    clear = _signal(node, _near(OTHER_HASH, 40), TlpLevel.CLEAR)
    red = _signal(node, _near(OTHER_HASH, 80), TlpLevel.RED)
    node.post([clear, red])
    # JPCERT may read and write the bank; its reader token may only read it.
    partner = kizuna_json(node.data_dir, "tokens", "create", "--org", "JPCERT/CC", "--read", node.collection,
                          "--write", node.collection)["token"]
    node.tokens["partner"] = partner

    done = _opinion(node, "partner", collection="shared", signal=clear["id"], verdict="false-positive",
                    comment="a bridge, not a flag")
    assert done.status_code == 201, done.text
    opinion = done.json()["opinion"]
    assert done.json()["status"]["success_count"] == 1
    jpcert = next(o["id"] for o in kizuna_json(node.data_dir, "orgs", "list")["organisations"]
                  if o["name"] == "JPCERT/CC")
    assert (opinion["type"], opinion["opinion"], opinion["object_refs"], opinion["created_by_ref"]) == (
        "opinion", "strongly-disagree", [clear["id"]], jpcert)
    # Under the signal's own markings, stored in the bank: the producer reads it back over TAXII.
    assert opinion["object_marking_refs"] == [TLP2_IDS[TlpLevel.CLEAR]]
    stored = node.session("writer").get(node.collection_url() + f"objects/{opinion['id']}/").json()["objects"]
    assert stored == [opinion]

    # A signal the partner may not see answers exactly as one that does not exist, and nothing is stored.
    hidden = _opinion(node, "partner", collection="shared", signal=red["id"], verdict="true-positive")
    absent = _opinion(node, "partner", collection="shared", signal="indicator--00000000-0000-4000-8000-000000000000",
                      verdict="true-positive")
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json() == absent.json() and red["id"] not in hidden.text
    # So does a bank it may not see; a bank it reads but may not write is a 403.
    other = _opinion(node, "partner", collection=node.other_collection, signal=clear["id"], verdict="disputed")
    nowhere = _opinion(node, "partner", collection="00000000-0000-4000-8000-000000000000", signal=clear["id"],
                       verdict="disputed")
    assert other.status_code == nowhere.status_code == 404 and other.json() == nowhere.json()
    read_only = _opinion(node, "reader", collection="shared", signal=clear["id"], verdict="disputed")
    assert read_only.status_code == 403, read_only.text

    # Bad input: TAXII error objects naming what is wrong.
    for fields, named in (({"collection": "shared", "signal": clear["id"], "verdict": "maybe"}, "maybe"),
                          ({"collection": "shared", "signal": clear["id"]}, "verdict"),
                          ({"collection": "shared", "signal": clear["id"], "verdict": "disputed", "colour": "red"},
                           "colour"),
                          ({"collection": "shared", "signal": 7, "verdict": "disputed"}, "signal"),
                          # PostgreSQL text cannot hold NUL: looked up, it was a 500 there
                          ({"collection": "sha\x00red", "signal": clear["id"], "verdict": "disputed"}, "NUL")):
        bad = _opinion(node, "partner", **fields)
        assert bad.status_code == 400 and named in bad.json()["description"], (fields, bad.text)
    # A NUL in a path or a query value is refused before any route looks it up (a 500 on PostgreSQL before).
    for url in (f"{node.api_root}collections/sha%00red/objects/", f"{node.api_root}hashes/match?store=%00x",
                f"{node.collection_url()}objects/?match[id]=indicator--%00"):
        nul = node.session("partner").request("POST" if "hashes" in url else "GET", url, json={"hashes": []})
        assert nul.status_code == 400 and "NUL" in nul.json()["description"], (url, nul.text)
    not_json = node.session("partner").post(f"{node.api_root}hashes/opinions", data=b"{",
                                            headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["http_status"] == "400"
    anonymous = requests.post(f"{node.api_root}hashes/opinions", json={})
    assert anonymous.status_code == 401
    # Only the one verdict was stored.
    bank = node.session("writer").get(node.collection_url() + "objects/", params={"match[type]": "opinion"})
    assert [o["id"] for o in bank.json()["objects"]] == [opinion["id"]]
