"""The Japanese catalog is complete, current and consistent with the glossary.

Fails when a string in the console's code or templates is missing from ``kizuna.po`` (or the catalog
keeps one nothing uses any more), when a Japanese string is empty or fuzzy, when the committed
``kizuna.mo`` is not the compiled ``kizuna.po``, or when a glossary term is translated otherwise.
"""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir, extract_from_file
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

import kizuna.core.vocab
import kizuna.ops.report
import kizuna.policy.preview
import kizuna.web

WEB = Path(kizuna.web.__file__).parent
PO = WEB / "locale" / "ja" / "LC_MESSAGES" / "kizuna.po"
POLICY_REASONS = Path(kizuna.policy.preview.__file__)
SHIFT_REPORT = Path(kizuna.ops.report.__file__)  # the shift report's labels come from this catalog too
VOCABULARY = Path(kizuna.core.vocab.__file__)  # the words for identifiers, the console's and the report's
#: Messages of the rooms below the console that its hash and import forms show (core/messages.py).
ROOT = Path(kizuna.core.vocab.__file__).parents[1]
MESSAGES = [ROOT / "hashes" / f"{name}.py" for name in ("api", "hashing", "hashlists", "matching", "opinions",
                                                        "signals")]
MESSAGES += [ROOT / "formats" / "ioc_lists.py", ROOT / "formats" / "upload.py"]
MO = PO.with_suffix(".mo")
GLOSSARY = Path(__file__).resolve().parents[2] / "docs" / "glossary-ja.md"
_PLACEHOLDER = re.compile(r"%\([a-z_]+\)s")


def _key(value: str | list[str] | tuple[str, ...]) -> str | tuple[str, ...]:
    return value if isinstance(value, str) else tuple(value)


def extracted_ids() -> set[str | tuple[str, ...]]:
    with open(WEB / "babel.cfg", encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    found: set[str | tuple[str, ...]] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(WEB), method_map, options_map, keywords=keywords
    ):
        found.add(message if isinstance(message, str) else tuple(message))
    # the policy's reasons for withholding a draft are English there and translated where shown
    for source in (POLICY_REASONS, SHIFT_REPORT, VOCABULARY, *MESSAGES):
        for _line, message, _comments, _context in extract_from_file("python", str(source), keywords=keywords):
            found.add(message if isinstance(message, str) else tuple(message))
    return found


def catalog() -> dict[str | tuple[str, ...], str | tuple[str, ...]]:
    with open(PO, "rb") as f:
        po = read_po(f, locale="ja")
    assert not po.obsolete, f"obsolete entries left in {PO}: {list(po.obsolete)}"
    fuzzy = [m.id for m in po if m.id and m.fuzzy]
    assert not fuzzy, f"fuzzy (unchecked) translations: {fuzzy}"
    return {m.id if isinstance(m.id, str) else tuple(m.id): m.string for m in po if m.id}


def glossary() -> list[tuple[str, str]]:
    rows = []
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2 and cells[0] not in ("English", "---"):
            rows.append((cells[0], cells[1]))
    return rows


def test_the_catalog_holds_exactly_the_strings_the_console_uses() -> None:
    in_code = extracted_ids()
    in_catalog = set(catalog())
    assert len(in_code) > 50  # the extraction really read the templates and modules
    assert not in_code - in_catalog, f"run the catalog update in docs/web.md; missing: {in_code - in_catalog}"
    assert not in_catalog - in_code, f"no longer used, remove: {in_catalog - in_code}"


def test_every_japanese_string_is_filled_in() -> None:
    empty = [msgid for msgid, text in catalog().items()
             if not (all(text) if isinstance(text, tuple) else text)]
    assert not empty, f"empty Japanese translations: {empty}"


def test_the_compiled_catalog_is_the_committed_po() -> None:
    with open(MO, "rb") as f:
        compiled = {_key(m.id): _key(m.string) for m in read_mo(f) if m.id}
    expected = {msgid: _key(text) for msgid, text in catalog().items()}
    assert compiled == expected, "kizuna.mo is stale: run pybabel compile (docs/web.md)"


def test_placeholders_survive_translation() -> None:
    for msgid, text in catalog().items():
        source = " ".join(msgid) if isinstance(msgid, tuple) else msgid
        target = " ".join(text) if isinstance(text, tuple) else text
        assert set(_PLACEHOLDER.findall(source)) == set(_PLACEHOLDER.findall(target)), msgid


def test_glossary_terms_are_translated_consistently() -> None:
    terms = glossary()
    assert ("indicator", "指標") in terms and ("sighting", "サイティング") in terms
    checked = 0
    for msgid, text in catalog().items():
        source = _PLACEHOLDER.sub("", " ".join(msgid) if isinstance(msgid, tuple) else msgid)
        target = " ".join(text) if isinstance(text, tuple) else text
        for english, japanese in terms:
            plural = english[:-1] + "ies" if english.endswith("y") else english + "s"
            if re.search(rf"\b({re.escape(english)}|{re.escape(plural)})\b", source, re.IGNORECASE):
                checked += 1
                assert japanese in target, f"{msgid!r}: {english!r} must be {japanese!r} (docs/glossary-ja.md)"
    assert checked > 20


def test_tlp_labels_are_never_in_the_catalog() -> None:
    # FIRST requires the labels untranslated: they are rendered outside gettext (render.tlp_badge).
    for msgid in catalog():
        assert "TLP:" not in (" ".join(msgid) if isinstance(msgid, tuple) else msgid)
