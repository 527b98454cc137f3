"""The console's hash page against a real `kizuna serve`: JPCERT matches pasted hashes and an uploaded
image against the bank it reads, through the one visibility check (NCSC's TLP:RED signal is never
matched for it, and its line reads exactly like a hash nobody holds), records a verdict that lands in
the bank as its own STIX opinion under the signal's marking, and a verdict on the hidden signal is the
same 404 page as one on a signal that does not exist. In Chromium: the upload, the verdict button,
axe and the Japanese catalog."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from kizuna.hashes.hashing import hash_file
from kizuna.hashes.signals import PDQ, make_signal
from kizuna.policy.tlp import TLP2_IDS, TlpLevel
from tests.conftest import kizuna_json
from tests.web.conftest import Console, check_accessibility, form_csrf, running_console, shoot, signed_in, untranslated

TAXII = "application/taxii+json;version=2.1"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "hashes"
BRIDGE = hash_file(EXAMPLES / "bank-bridge.jpg").pdq
# Far from each other and from the bridge (128 bits apart pairwise, PDQ's threshold is 31).
RED_HASH = f"{int(BRIDGE, 16) ^ ((1 << 128) - 1):064x}"
NOBODY = f"{int(BRIDGE, 16) ^ (((1 << 128) - 1) << 128):064x}"


def _near(digest: str, bits: int) -> str:
    return f"{int(digest, 16) ^ ((1 << bits) - 1):064x}"  # the lowest `bits` bits flipped


def _taxii(console: Console, token: str) -> requests.Session:
    session = requests.Session()
    session.headers.update({"Accept": TAXII, "Content-Type": TAXII, "Authorization": f"Bearer {token}"})
    return session


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A console whose collection "games" holds NCSC's CLEAR bridge signal and a RED one; "jp-bank" is a
    JPCERT token that reads and writes it ("jp" only reads it)."""
    with running_console(tmp_path_factory.mktemp("hashes-console")) as console:
        data = console.data_dir
        orgs = {o["name"]: o["id"] for o in kizuna_json(data, "orgs", "list")["organisations"]}
        for who, org in (("uk-bank", "NCSC UK"), ("jp-bank", "JPCERT/CC")):
            console.tokens[who] = kizuna_json(data, "tokens", "create", "--org", org, "--read", "games",
                                              "--write", "games", "--label", who)["token"]
        signals = {level: make_signal(PDQ, digest, producer=orgs["NCSC UK"], labels=["graphic-violence"],
                                      markings=[TLP2_IDS[level]], quality=100)
                   for level, digest in ((TlpLevel.CLEAR, BRIDGE), (TlpLevel.RED, RED_HASH))}
        posted = _taxii(console, console.tokens["uk-bank"]).post(
            f"{console.base}/main/collections/games/objects/", data=json.dumps({"objects": list(signals.values())}))
        assert posted.status_code == 202 and posted.json()["success_count"] == 2, posted.text
        yield console, {"clear": signals[TlpLevel.CLEAR]["id"], "red": signals[TlpLevel.RED]["id"],
                        "jp": orgs["JPCERT/CC"]}


def _match(session: requests.Session, console: Console, text: str, **fields: str) -> requests.Response:
    csrf = form_csrf(session.get(console.base + "/console/hashes").text)
    return session.post(console.base + "/console/hashes", data={"csrf": csrf, "hashes": text, **fields},
                        files={"media": ("", b"")})


def _verdict(session: requests.Session, console: Console, signal: str, verdict: str = "false-positive",
             bank_ref: str = "games") -> requests.Response:
    csrf = form_csrf(session.get(console.base + "/console/hashes").text)
    return session.post(console.base + "/console/hashes/opinion", allow_redirects=False,
                        data={"csrf": csrf, "bank": bank_ref, "signal": signal, "verdict": verdict,
                              "comment": "a bridge, not a flag"})


def test_matching_and_a_verdict_through_the_tokens_own_view(bank: Any) -> None:
    console, ids = bank
    jp = console.sign_in("jp-bank")
    answer = _match(jp, console, "\n".join([_near(BRIDGE, 6), _near(RED_HASH, 6), "zz12", _near(NOBODY, 6)]))
    assert answer.status_code == 200, answer.text
    results = answer.text.split('<article class="hash-result">')[1:]
    assert len(results) == 4
    assert ids["clear"] in results[0] and "<td>6</td>" in results[0] and "graphic-violence" in results[0]
    assert "NCSC UK" in results[0] and "Games security" in results[0]
    # The RED signal's line reads exactly as a hash nobody holds, and its id is nowhere on the page.
    assert results[1].replace(_near(RED_HASH, 6), "H").replace("line 2", "L") == \
        results[3].replace(_near(NOBODY, 6), "H").replace("line 4", "L").split("</section>")[0]
    assert ids["red"] not in answer.text
    assert "Not usable" in results[2]
    # Each pasted line is a hash of its own: a comma in the first is that line's problem, not a CSV header.
    pasted = _match(jp, console, "zz,12\n" + _near(BRIDGE, 6)).text.split('<article class="hash-result">')[1:]
    assert len(pasted) == 2 and "Not usable" in pasted[0] and ids["clear"] in pasted[1]
    # NCSC, which may see it, matches the RED signal with the same form.
    assert ids["red"] in _match(console.sign_in("uk-bank"), console, _near(RED_HASH, 6)).text

    # A verdict: JPCERT's opinion, under the signal's marking, stored in the bank.
    recorded = _verdict(jp, console, ids["clear"])
    assert recorded.status_code == 303, recorded.text
    opinion_id = re.search(r"/console/objects/(opinion--[0-9a-f-]+)", recorded.headers["location"]).group(1)
    stored = _taxii(console, console.tokens["uk-bank"]).get(
        f"{console.base}/main/collections/games/objects/{opinion_id}/").json()["objects"][0]
    assert (stored["opinion"], stored["object_refs"], stored["created_by_ref"], stored["object_marking_refs"]) == (
        "strongly-disagree", [ids["clear"]], ids["jp"], [TLP2_IDS[TlpLevel.CLEAR]])
    assert stored["explanation"] == "false-positive: a bridge, not a flag"

    # On the hidden signal: the same 404 page as on a signal that does not exist; nothing stored.
    hidden = _verdict(jp, console, ids["red"])
    absent = _verdict(jp, console, "indicator--00000000-0000-4000-8000-000000000000")
    assert hidden.status_code == absent.status_code == 404
    assert hidden.text == absent.text and ids["red"] not in hidden.text
    assert _verdict(jp, console, ids["clear"], bank_ref="no-such-bank").text == absent.text
    opinions = _taxii(console, console.tokens["uk-bank"]).get(
        f"{console.base}/main/collections/games/objects/", params={"match[type]": "opinion"}).json()["objects"]
    assert [o["id"] for o in opinions] == [opinion_id]

    # A token that only reads the bank gets no verdict form, and a verdict posted anyway is refused.
    reader = console.sign_in("jp")
    page = _match(reader, console, _near(BRIDGE, 6)).text
    assert ids["clear"] in page and 'action="/console/hashes/opinion"' not in page
    assert _verdict(reader, console, ids["clear"]).status_code == 403

    # A file that is neither image nor video is matched by its exact hashes, and the page says so.
    csrf = form_csrf(jp.get(console.base + "/console/hashes").text)
    text_file = jp.post(console.base + "/console/hashes", data={"csrf": csrf, "hashes": ""},
                        files={"media": ("notes.txt", b"not an image")})
    assert text_file.status_code == 200 and "matched by its MD5 and SHA-256 only" in text_file.text

    # Bad input: one message, the form kept.
    assert "from 0 to 255" in _match(jp, console, BRIDGE, threshold="300").text
    # A distance typed with a Japanese input method's full-width digits reads as the CLI's --threshold reads it.
    assert ids["clear"] in _match(jp, console, _near(BRIDGE, 6), threshold="\uff16").text  # ６
    assert ids["clear"] not in _match(jp, console, _near(BRIDGE, 6), threshold="\uff15").text  # ５
    assert _match(jp, console, BRIDGE, threshold="\uff13\uff10\uff10").status_code == 422  # ３００
    assert _match(jp, console, BRIDGE, threshold="-1").status_code == 422
    assert "Paste hashes or choose a file" in _match(jp, console, "  ").text
    assert _verdict(jp, console, ids["clear"], verdict="maybe").status_code == 400


def test_an_uploaded_image_matches_and_the_page_reads_in_japanese(bank: Any, browser: Any) -> None:
    console, ids = bank
    page = signed_in(browser, console, "jp-bank", browse=False)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Hashes").click()
    page.wait_for_url(re.compile(r".*/console/hashes$"))
    page.set_input_files("#h-media", str(EXAMPLES / "upload-bridge-shrunk.jpg"))
    page.get_by_role("button", name="Match").click()
    page.wait_for_selector("#match-summary")
    assert page.locator("#match-summary").inner_text() == "1 inputs, 1 matched."
    assert page.locator(f'a[href="/console/objects/{ids["clear"]}"]').is_visible()
    check_accessibility(page)
    shoot(page, "hashes-en")
    page.get_by_role("button", name="日本語").click()
    page.goto(console.base + "/console/hashes")
    assert untranslated(page) == []
    page.fill("#h-hashes", _near(BRIDGE, 3))
    page.locator("form.share button[type=submit]").click()
    page.wait_for_selector("#match-summary")
    assert untranslated(page) == []
    check_accessibility(page)
    shoot(page, "hashes-ja")
    page.locator("form.verdict select").select_option("true-positive")
    page.locator("form.verdict button").click()
    page.wait_for_url(re.compile(r".*/console/objects/opinion--"))
    assert page.locator("h1").is_visible()
    page.context.close()


def test_what_the_form_refuses_is_said_in_japanese(bank: Any) -> None:
    """A bad pasted line, a truncated image, a text file and a refused verdict, each in the reader's
    language; the value the reader gave stays as it is."""
    console, ids = bank
    jp = console.sign_in("jp-bank", **{"Accept-Language": "ja"})
    csrf = form_csrf(jp.get(console.base + "/console/hashes").text)
    cut = (EXAMPLES / "bank-bridge.jpg").read_bytes()[:3000]
    pasted = jp.post(console.base + "/console/hashes", data={"csrf": csrf, "hashes": "zzzz"},
                     files={"media": ("", b"")}).text
    assert "<h3><code>1 行目</code></h3>" in pasted
    assert "使用できません： pdq ハッシュ &#39;zzzz&#39; は16進数ではありません" in pasted
    truncated = jp.post(console.base + "/console/hashes", data={"csrf": csrf, "hashes": ""},
                        files={"media": ("cut.jpg", cut)}).text
    assert "<h3><code>cut.jpg</code></h3>" in truncated and "使用できません： 壊れた画像です" in truncated
    text = jp.post(console.base + "/console/hashes", data={"csrf": csrf, "hashes": ""},
                   files={"media": ("notes.txt", b"just some notes\n")}).text
    assert "画像でも動画でもありません: MD5 と SHA-256 だけで照合しました" in text
    for verdict, comment, said in (("maybe", "", "判定 &#39;maybe&#39; は true-positive, false-positive, disputed の"
                                    "いずれでもありません"),
                                   ("disputed", "x" * 2001, "コメントが 2000 文字を超えています")):
        refused = jp.post(console.base + "/console/hashes/opinion", allow_redirects=False,
                          data={"csrf": csrf, "bank": "games", "signal": ids["clear"], "verdict": verdict,
                                "comment": comment})
        assert refused.status_code == 400 and said in refused.text, refused.text
    english = console.sign_in("jp-bank")
    said = _match(english, console, "zzzz").text
    assert "<h3><code>line 1</code></h3>" in said and "pdq hash &#39;zzzz&#39; is not hexadecimal" in said
