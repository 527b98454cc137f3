"""vPDQ: a video's hash is its list of frame hashes, carried whole by a signal; vPDQ's two-threshold
match agrees with a plain brute force on ThreatExchange's sample vPDQ hashes; and real videos made
with ffmpeg are hashed, banked and matched through the real `kizuna` command."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from kizuna.core.node import Node
from kizuna.hashes import video
from kizuna.hashes.hashlists import Entry, Rejected, read_hash_list
from kizuna.hashes.signals import (
    EXTENSION_ID,
    VPDQ,
    frames_text,
    make_signal,
    parse_frames,
    read_signal,
)
from kizuna.hashes.video import DEFAULT_RULE, VideoRule, compare, usable
from kizuna.stix.validation import check_object
from tests.conftest import kizuna, kizuna_json
from tests.hashes.videos import make_videos

SAMPLES = Path(__file__).parent.parent / "fixtures" / "vpdq"


def _frames(name: str) -> str:
    return frames_text(parse_frames((SAMPLES / name).read_text()))


def _reference(query: str, target: str, threshold: int) -> tuple[float, float]:
    """vPDQ's rule written out plainly: distinct frames of quality ≥ 50, each side's share of frames
    within ``threshold`` of some frame of the other."""
    def frames(text: str) -> list[int]:
        return sorted({int(line.split(",")[2], 16) for line in text.splitlines() if int(line.split(",")[1]) >= 50})

    q, t = frames(query), frames(target)
    q_hit = sum(any((a ^ b).bit_count() <= threshold for b in t) for a in q)
    t_hit = sum(any((a ^ b).bit_count() <= threshold for a in q) for b in t)
    return round(100 * q_hit / len(q), 2), round(100 * t_hit / len(t), 2)


PAIRS = [("chair-22-sd-grey-bar.txt", "chair-orig-22-sd-bar.txt", True),
         ("pattern-longer-no-bar.txt", "pattern-hd-no-bar.txt", True),
         ("chair-22-with-large-logo-bar.txt", "chair-orig-22-sd-bar.txt", False),
         ("doorknob-hd-no-bar.txt", "chair-orig-22-sd-bar.txt", False),
         ("pattern-hd-no-bar.txt", "doorknob-hd-no-bar.txt", False)]


@pytest.mark.parametrize(("query", "target", "expected"), PAIRS)
def test_the_two_threshold_rule_on_the_sample_hashes_agrees_with_brute_force(query: str, target: str,
                                                                            expected: bool) -> None:
    q, t = _frames(query), _frames(target)
    found = compare(usable(q), usable(t), 31)
    assert (found.query_percent, found.target_percent) == _reference(q, t, 31)
    assert found.matches(DEFAULT_RULE) is expected
    if expected:
        assert found.distance <= 31
    assert (compare(usable(q), usable(t), 0).query_percent, compare(usable(q), usable(t), 0).target_percent) \
        == _reference(q, t, 0)


def test_the_percentages_are_the_two_thresholds() -> None:
    longer, short = usable(_frames("pattern-longer-no-bar.txt")), usable(_frames("pattern-hd-no-bar.txt"))
    clip = compare(short, longer, 31)  # every frame of the short video is in the longer one
    assert clip.query_percent == 100.0 and 80 < clip.target_percent < 100
    assert clip.matches(DEFAULT_RULE) and not clip.matches(VideoRule(80.0, 95.0))
    whole = compare(longer, short, 31)  # the longer one has frames the short one lacks
    assert 80 < whole.query_percent < 100 and not whole.matches(VideoRule(95.0, 0.0))


def test_a_signal_carries_the_frames_as_its_pattern_and_names_them_by_their_sha256() -> None:
    frames = _frames("doorknob-hd-no-bar.txt")
    signal = make_signal(VPDQ, (SAMPLES / "doorknob-hd-no-bar.txt").read_text(), producer=None,
                         labels=["graphic-violence"], markings=[])
    assert signal["pattern_type"] == "vpdq" and signal["pattern"] == frames
    extension = signal["extensions"][EXTENSION_ID]
    assert extension["hash"] == hashlib.sha256(frames.encode()).hexdigest()
    assert extension["frame_count"] == len(frames.splitlines()) == 120
    assert check_object(signal) is None  # a valid STIX indicator
    read = read_signal(signal)
    assert read is not None and read.hash_type == VPDQ and read.frames == frames
    # A pattern that is not the frames the hash names is not a signal (no silent mismatch).
    tampered = {**signal, "pattern": frames.replace(",100,", ",99,", 1)}
    assert read_signal(tampered) is None


def test_a_vpdq_file_is_one_entry_and_a_bad_frame_line_is_named() -> None:
    text = (SAMPLES / "chair-orig-22-sd-bar.txt").read_text()
    assert list(read_hash_list(text)) == [Entry(1, VPDQ, frames_text(parse_frames(text)))]
    lines = text.splitlines()
    lines[2] = lines[2].replace(",", ";", 1)
    assert list(read_hash_list("\n".join(lines))) == [
        Rejected(3, "not a vPDQ frame line 'frame,quality,pdq_hex,timestamp'")]


def test_a_threatexchange_csv_carries_vpdq_signals_and_the_command_banks_and_matches_them(tmp_path: Path) -> None:
    """A ThreatExchange / HMA CSV export names a video's hash ``vpdq``, its value the signal form: a JSON list
    of ``pdq_hex,quality,timestamp`` strings (no frame numbers: numbered in order here)."""
    text = (SAMPLES / "chair-orig-22-sd-bar.txt").read_text()
    frames = parse_frames(text)
    compact = json.dumps([f"{f.hash},{f.quality},{f.timestamp:.3f}" for f in frames])
    export = tmp_path / "hma-export.csv"
    export.write_text("signal_type,signal,labels\n"
                      f"vpdq,\"{compact.replace(chr(34), chr(34) * 2)}\",graphic-violence\n"
                      "vpdq,\"[\"\"not a feature\"\"]\",graphic-violence\n")
    entries = list(read_hash_list(export.read_text()))
    renumbered = "".join(f"{n},{f.quality},{f.hash},{f.timestamp:.3f}\n" for n, f in enumerate(frames))
    assert entries == [Entry(2, VPDQ, renumbered, None, ("graphic-violence",)),
                       Rejected(3, "vPDQ feature 1 is not 'pdq_hex,quality,timestamp' with a quality from 0 to 100")]

    data = tmp_path / "node"
    kizuna_json(data, "init", "--org-name", "Home", "--country", "GBR")
    kizuna_json(data, "collections", "create", "--title", "Video bank", "--alias", "bank")
    run = kizuna(data, "hashes", "import", str(export), "--collection", "bank", "--json", check=False)
    imported = json.loads(run.stdout)
    assert run.returncode == 1  # the bad row fails the run, after the good one is banked
    assert [r["where"] for r in imported["rejected"]] == [f"{export}:3"]  # reported; the good row is banked
    result = kizuna(data, "hashes", "match", str(SAMPLES / "chair-22-sd-grey-bar.txt"),
                    str(SAMPLES / "doorknob-hd-no-bar.txt"), "--json")
    near, other = (json.loads(line) for line in result.stdout.splitlines())
    assert [m["labels"] for m in near["matches"]] == [["graphic-violence"]] and other["matches"] == []


def test_a_bank_proposes_the_videos_that_share_a_frame() -> None:
    from kizuna.hashes.banks import Bank, confirmed
    from kizuna.store.base import Collection

    chair = make_signal(VPDQ, _frames("chair-orig-22-sd-bar.txt"), producer=None, labels=[], markings=[])
    pattern = make_signal(VPDQ, _frames("pattern-hd-no-bar.txt"), producer=None, labels=[], markings=[])
    bank = Bank(Collection(1, "c-1", "main", "Bank", None, "bank", ()))
    bank.take([chair, pattern])
    assert len(bank.pdq.index) == 0 and len(bank.frames.index) == len(usable(chair["pattern"])) + len(
        usable(pattern["pattern"]))
    grey, logo = _frames("chair-22-sd-grey-bar.txt"), _frames("chair-22-with-large-logo-bar.txt")
    door = _frames("doorknob-hd-no-bar.txt")
    assert bank.candidates([(VPDQ, grey), (VPDQ, logo), (VPDQ, door)], 31) == [{chair["id"]}, {chair["id"]}, set()]
    signal = read_signal(chair)
    assert signal is not None
    found = confirmed(signal, VPDQ, grey, 31)
    assert found is not None and found[0] <= 31 and found[1] is not None and found[1].query_percent == 100.0
    assert confirmed(signal, VPDQ, logo, 31) is None  # a candidate, but too few of its frames match


def test_videos_are_hashed_banked_and_matched_by_the_command(tmp_path: Path) -> None:
    videos = make_videos(tmp_path / "videos")
    hashed = kizuna_json(tmp_path / "unused", "hash", str(videos["banked"]))
    assert [f["timestamp"] for f in hashed["vpdq"]] == [0.0, 1.0, 2.0]
    assert all(f["quality"] >= 50 and len(f["hash"]) == 64 for f in hashed["vpdq"]) and hashed["pdq"] is None

    data = tmp_path / "node"
    kizuna_json(data, "init", "--org-name", "Home", "--country", "GBR")
    kizuna_json(data, "collections", "create", "--title", "Video bank", "--alias", "bank")
    kizuna(data, "hashes", "import", str(videos["banked"]), "--collection", "bank", "--label", "graphic-violence",
           "--tlp", "green")
    node = Node.open(data)
    try:
        stored = [json.loads(b) for b in node.export_objects(node.find_collection("bank"))]
    finally:
        node.close()
    signal = next(o for o in stored if o.get("pattern_type") == VPDQ)
    assert [line.split(",")[2] for line in signal["pattern"].splitlines()] == [f["hash"] for f in hashed["vpdq"]]

    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(videos["banked"].read_bytes()[:300])
    result = kizuna(data, "hashes", "match", str(videos["reencoded"]), str(videos["other"]), str(corrupt), "--json",
                    check=False)
    assert result.returncode == 1, result.stderr  # the corrupt video fails the run; the others are matched
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    reencoded, other = lines[0], lines[1]
    assert [m["signal"] for m in reencoded["matches"]] == [signal["id"]]
    match = reencoded["matches"][0]
    assert match["hash_type"] == VPDQ and match["distance"] <= 31 and match["query_match_percent"] == 100.0
    assert match["labels"] == ["graphic-violence"] and reencoded["frames"] == 3
    assert other["matches"] == []
    assert lines[2] == {"input": str(corrupt), "error": "corrupt video: Cannot open video"}
    text = kizuna(data, "hashes", "match", str(corrupt), str(videos["reencoded"]), check=False)
    assert text.stderr.splitlines()[0] == f"kizuna hashes match: corrupt video: Cannot open video: {corrupt}"
    assert "1 match(es)" in text.stdout and "frames 100% / 100%" in text.stdout


def test_video_containers_are_recognised_by_their_first_bytes() -> None:
    assert video.looks_like_video(b"\x00\x00\x00\x20ftypisom") and not video.looks_like_video(b"\x89PNG\r\n\x1a\n")
    assert video.looks_like_video(b"RIFF\x00\x00\x00\x00AVI LIST") and video.looks_like_video(b"\x1a\x45\xdf\xa3")
