"""The hasher reproduces the reference PDQ hashes, and hash lists are read line by line with every
bad line named and the rest kept."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from kizuna.hashes.hashing import HashingError, hash_bytes, hash_file
from kizuna.hashes.hashlists import Entry, Rejected, looks_like_hash_list, read_hash_list
from kizuna.hashes.matching import queries_from_path
from kizuna.hashes.signals import EXTENSION_ID, MD5, PDQ, SHA256, make_signal, read_signal
from kizuna.stix.validation import check_object

PDQ_DIR = Path(__file__).parent.parent / "fixtures" / "pdq"
#: Builds of PDQ differ by their image decoder and resizing; ThreatExchange's own tests accept a
#: Hamming distance up to 16 between implementations (pdq/python/pdqhashing/tests/pdq_test.py).
TOLERANCE = 16


def _distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


REFERENCE = list(csv.DictReader((PDQ_DIR / "reference-hashes.csv").open()))


@pytest.mark.parametrize("row", REFERENCE, ids=[f"{r['image']}|{r['implementation'][:20]}" for r in REFERENCE])
def test_the_hasher_reproduces_the_reference_hashes(row: dict[str, str]) -> None:
    found = hash_file(PDQ_DIR / "images" / row["image"])
    assert found.pdq is not None
    assert _distance(found.pdq, row["pdq_hex"]) <= TOLERANCE
    if row["quality"]:
        assert found.quality == int(row["quality"])


def test_low_quality_is_reported_and_not_usable_and_non_images_get_exact_hashes_only() -> None:
    small = hash_file(PDQ_DIR / "images" / "misc" / "small.jpg")
    assert small.quality is not None and small.quality < 50 and not small.pdq_usable
    text = hash_bytes(b"just some text, not an image\n")
    assert text.pdq is None and len(text.md5) == 32 and len(text.sha256) == 64


def test_a_corrupt_image_is_an_error_not_a_silent_non_match() -> None:
    data = (PDQ_DIR / "images" / "labelme-subset" / "q0003.jpg").read_bytes()
    with pytest.raises(HashingError, match="corrupt image"):
        hash_bytes(data[:400])
    with pytest.raises(HashingError, match="corrupt image"):
        hash_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)


def test_plain_lists_tell_types_by_length_and_prefix_and_name_every_bad_line() -> None:
    pdq, md5 = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22", "d35c785545392755e7e4164457657269"
    text = f"# a bank\n{pdq}\n{md5.upper()}\nsha256:{pdq}\nnot-hex-at-all\n{pdq[:-2]}\n\n{pdq}ff\n"
    items = list(read_hash_list(text))
    assert items[:3] == [Entry(2, PDQ, pdq), Entry(3, MD5, md5), Entry(4, SHA256, pdq)]
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert [r.line for r in rejected] == [5, 6, 8]
    assert "not hexadecimal" in rejected[0].reason and "62 hex digits, not 64" in rejected[1].reason
    assert [i.hash_type for i in read_hash_list(pdq, kind=SHA256)] == [SHA256]


def test_threatexchange_and_hma_csv_exports_keep_types_labels_and_quality() -> None:
    pdq = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
    exchange = (f"indicator_type,indicator,tags\nHASH_PDQ,{pdq},terrorist-content;graphic-violence\n"
                f"HASH_MD5,d35c785545392755e7e4164457657269,\nHASH_TLSH,abc,\nHASH_PDQ,{pdq[:10]},\n")
    items = list(read_hash_list(exchange))
    assert items[0] == Entry(2, PDQ, pdq, None, ("terrorist-content", "graphic-violence"))
    assert isinstance(items[1], Entry) and items[1].hash_type == MD5
    assert [(i.line, type(i).__name__) for i in items[2:]] == [(4, "Rejected"), (5, "Rejected")]
    hma = f"signal_type,signal_value,quality\npdq,{pdq},87\nvideo_md5,d35c785545392755e7e4164457657269,\n"
    assert [(i.hash_type, getattr(i, "quality", None)) for i in read_hash_list(hma)] == [(PDQ, 87), (MD5, None)]


def test_a_signal_is_valid_stix_and_reads_back() -> None:
    pdq = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
    producer = "identity--6ec72b82-8183-4103-8593-c1030d0d2a3a"
    for hash_type, value in ((PDQ, pdq), (MD5, "d35c785545392755e7e4164457657269"), (SHA256, pdq)):
        signal = make_signal(hash_type, value, producer=producer, labels=["graphic-violence"], markings=[],
                             quality=90 if hash_type == PDQ else None)
        assert check_object(signal) is None
        read = read_signal(signal)
        assert read is not None
        assert (read.hash_type, read.hash, read.labels) == (hash_type, value, ("graphic-violence",))
        assert signal["extensions"][EXTENSION_ID]["hash"] == value
    assert make_signal(PDQ, pdq, producer=producer, labels=[], markings=[])["pattern_type"] == "pdq"
    assert "file:hashes.'SHA-256'" in make_signal(SHA256, pdq, producer=producer, labels=[], markings=[])["pattern"]


def test_a_bank_proposes_every_hash_a_signal_has_had_and_confirms_only_the_current_one() -> None:
    from kizuna.hashes.banks import Bank, confirmed
    from kizuna.store.base import Collection

    pdq = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
    bank = Bank(Collection(1, "c-1", "main", "Bank", None, "bank", ()))
    signal = make_signal(MD5, "d35c785545392755e7e4164457657269", producer=None, labels=["a"], markings=[])
    image = make_signal(PDQ, pdq, producer=None, labels=["b"], markings=[])
    bank.take([signal, image])
    near = pdq[:-1] + "3"
    # A new version with the same hash adds nothing to the index; another signal with that hash does.
    bank.take([{**image, "modified": "2030-01-01T00:00:00.000Z", "labels": ["c"]}, image])
    assert len(bank.pdq.index) == 1
    twin = make_signal(PDQ, pdq, producer="identity--7d9f1c53-5b8e-4f6c-9b0e-2f3a4b5c6d7e", labels=["b"],
                       markings=[])
    bank.take([twin])
    assert len(bank.pdq.index) == 2
    assert bank.candidates([(PDQ, near)], 31) == [{image["id"], twin["id"]}]
    bank = Bank(Collection(1, "c-1", "main", "Bank", None, "bank", ()))
    bank.take([signal, image])
    assert bank.candidates([(PDQ, near), (MD5, "d35c785545392755e7e4164457657269"), (MD5, "1" * 32)], 31) == [
        {image["id"]}, {signal["id"]}, set()]
    # A later version that changes the hash: both hashes stay candidates (a caller may see either
    # version), and a match is confirmed only on the hash of the version the caller sees.
    changed = {**signal, "modified": "2030-01-01T00:00:00.000Z",
               "extensions": {EXTENSION_ID: {"extension_type": "property-extension", "hash_type": MD5,
                                             "hash": "0" * 32}}}
    bank.take([changed])
    assert bank.candidates([(MD5, "d35c785545392755e7e4164457657269"), (MD5, "0" * 32)], 31) == [
        {signal["id"]}, {signal["id"]}]
    current = read_signal(changed)
    assert current is not None and read_signal(image) is not None
    assert confirmed(current, MD5, "d35c785545392755e7e4164457657269", 31) is None
    assert confirmed(current, MD5, "0" * 32, 31) == (0, None)
    revoked = read_signal({**changed, "revoked": True})
    assert revoked is not None and confirmed(revoked, MD5, "0" * 32, 31) is None
    assert confirmed(read_signal(image), PDQ, near, 31) == (1, None)  # type: ignore[arg-type]
    assert confirmed(read_signal(image), PDQ, near, 0) is None  # type: ignore[arg-type]


def test_a_text_file_named_as_media_is_media_not_a_hash_list(tmp_path: Path) -> None:
    # A hash list is told from media by content, but not against its name: photo.jpg holding text is
    # an unusable image (matched by MD5/SHA-256), not a hash list whose first line "is not hexadecimal".
    assert looks_like_hash_list(b"hello\n") and looks_like_hash_list(b"hello\n", "hashes.txt")
    assert not looks_like_hash_list(b"hello\n", "photo.JPG") and not looks_like_hash_list(b"hello\n", "clip.mp4")
    fake = tmp_path / "photo.jpg"
    fake.write_text("hello\n")
    [query] = list(queries_from_path(fake))
    assert query.error is None and query.media is not None and query.media.pdq is None
