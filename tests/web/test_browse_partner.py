"""Browse and Search narrowed to what one partner node sent (federation provenance), over HTTP against a
real `kizuna serve`, on SQLite and PostgreSQL.

The partner node is real configuration (`kizuna partners add --org JPCERT/CC`) and its objects arrive the
way a pushing partner's do: over TAXII with that organisation's token, which records their provenance.
One of them is TLP:AMBER+STRICT of JPCERT/CC's own: the node's own token ("uk") reads it, a desk token of
the same organisation bound to an agreement that stops at TLP:GREEN ("desk") may not, and its counts and
lists must leave it out exactly as TAXII does."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from kizuna.policy import TLP2_IDS
from kizuna.policy.tlp import TLP2_EXTENSION_CREATOR, TLP2_EXTENSION_ID, TlpLevel
from tests.conftest import kizuna_json
from tests.web.conftest import Console, check_accessibility, running_console, shoot, signed_in, untranslated

TAXII = "application/taxii+json;version=2.1"
PARTNER = "jpcert-node"
GREEN, AMBER_STRICT = TLP2_IDS[TlpLevel.GREEN], TLP2_IDS[TlpLevel.AMBER_STRICT]


def _received(console: Console) -> dict[str, str]:
    """Configure JPCERT/CC's node as a partner and let it push three indicators (one AMBER+STRICT)."""
    jp = next(o["id"] for o in kizuna_json(console.data_dir, "orgs", "list")["organisations"]
              if o["name"] == "JPCERT/CC")
    kizuna_json(console.data_dir, "partners", "add", PARTNER, "--url", "http://127.0.0.1:9/main/",
                "--map", "games=shared:pull", "--org", "JPCERT/CC")
    writer = kizuna_json(console.data_dir, "tokens", "create", "--org", "JPCERT/CC", "--read", "games",
                         "--write", "games", "--label", "jpcert push")["token"]
    stamp = "2026-11-20T08:00:00.000Z"
    names = {"green-1": GREEN, "green-2": GREEN, "strict": AMBER_STRICT}
    ids = {role: f"indicator--{uuid.uuid4()}" for role in names}
    objects = [{"type": "indicator", "spec_version": "2.1", "id": ids[role], "created": stamp, "modified": stamp,
                "created_by_ref": jp, "name": f"Pushed by the partner node {role}", "pattern_type": "stix",
                "pattern": f"[ipv4-addr:value = '203.0.113.{n}']", "valid_from": stamp,
                "object_marking_refs": [marking]}
               for n, (role, marking) in enumerate(names.items(), start=1)]
    answer = requests.post(f"{console.base}/main/collections/games/objects/",
                           json={"objects": objects},
                           headers={"Content-Type": TAXII, "Accept": TAXII, "Authorization": f"Bearer {writer}"},
                           timeout=30)
    assert answer.status_code == 202 and answer.json()["success_count"] == 3, answer.text
    kizuna_json(console.data_dir, "agreements", "set", "uk-desk", "--partner", "NCSC UK", "--collections", "*",
                "--producers", "*", "--max-tlp", "green")
    desk = kizuna_json(console.data_dir, "tokens", "create", "--org", "NCSC UK", "--agreement", "uk-desk",
                       "--read", "games", "--label", "console desk")
    console.tokens["desk"], console.token_ids["desk"] = desk["token"], desk["id"]
    return ids


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def received(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with running_console(Path(tmp_path_factory.mktemp(f"partner-{request.param}")), request.param) as console:
        console.ids.update(_received(console))
        yield console


def _taxii_ids(console: Console, who: str) -> set[str]:
    headers = {"Accept": TAXII, "Authorization": f"Bearer {console.tokens[who]}"}
    envelope = requests.get(f"{console.base}/main/collections/games/objects/", headers=headers, timeout=30).json()
    return {obj["id"] for obj in envelope.get("objects", [])}


def _listed(html: str) -> set[str]:
    return set(re.findall(r'href="/console/objects/([a-z-]+--[0-9a-f-]{36})', html))


def _count(html: str) -> str:
    found = re.search(r'id="result-count">\s*([^<]+?)\s*</p>', html)
    assert found, "the page shows no count"
    return re.sub(r"\s+", " ", found.group(1))


def test_browse_by_partner_lists_and_counts_what_the_reader_may_see(received: Console) -> None:
    pushed = {received.ids[role] for role in ("green-1", "green-2", "strict")}
    assert pushed <= _taxii_ids(received, "uk")
    visible = pushed & _taxii_ids(received, "desk")
    assert visible == {received.ids["green-1"], received.ids["green-2"]}  # the agreement stops at GREEN
    for who, shown in (("uk", pushed), ("desk", visible)):
        session = received.sign_in(who)
        everything = session.get(received.base + "/console/browse?collection=games").text
        # The facet counts only the visible versions from the partner; the table says where each came from.
        assert f'<option value="{PARTNER}">{PARTNER} ({len(shown)})</option>' in everything
        narrowed = session.get(received.base + f"/console/browse?collection=games&partner={PARTNER}")
        assert narrowed.status_code == 200
        assert _listed(narrowed.text) == shown
        assert _count(narrowed.text) == f"{len(shown)} objects"
        assert narrowed.text.count(f"<td>{PARTNER}</td>") == len(shown)
        assert received.ids["malware"] in _listed(everything)
        # Combined with another filter: the node's own objects and the partner's never mix.
        assert _listed(session.get(received.base + f"/console/browse?collection=games&partner={PARTNER}"
                                   "&type=malware").text) == set()


def test_search_by_partner_finds_only_what_the_partner_sent_and_the_reader_sees(received: Console) -> None:
    for who, roles in (("uk", ("green-1", "green-2", "strict")), ("desk", ("green-1", "green-2"))):
        session = received.sign_in(who)
        found = session.get(received.base + f"/console/search?q=Pushed+by&partner={PARTNER}")
        assert found.status_code == 200
        assert _listed(found.text) == {received.ids[role] for role in roles}
        assert _count(found.text) == f"{len(roles)} results"
        assert _listed(session.get(received.base + "/console/search?q=Phishing&partner=" + PARTNER).text) == set()


def test_only_the_nodes_own_organisation_may_filter_by_partner(received: Console) -> None:
    uk, jp = received.sign_in("uk"), received.sign_in("jp")
    assert 'name="partner"' not in jp.get(received.base + "/console/browse?collection=games").text
    assert 'name="partner"' not in jp.get(received.base + "/console/search?q=Pushed").text
    # To a partner's token every partner is unknown: the same 400 as a name that is not configured.
    answers: list[Any] = [jp.get(received.base + f"/console/browse?collection=games&partner={PARTNER}"),
                          jp.get(received.base + f"/console/search?q=Pushed&partner={PARTNER}"),
                          uk.get(received.base + "/console/browse?collection=games&partner=no-such-node"),
                          uk.get(received.base + "/console/search?q=Pushed&partner=no-such-node")]
    assert [a.status_code for a in answers] == [400] * 4
    assert all("Unknown partner." in a.text for a in answers)


def test_the_partner_filter_in_japanese_in_a_browser(received: Console, browser: Any) -> None:
    page = signed_in(browser, received, "uk", locale="ja-JP")
    assert page.locator("label[for=f-partner]").inner_text() == "受信元"
    page.select_option("#f-partner", PARTNER)
    page.locator("form.filters button[type=submit]").click()
    page.wait_for_url(re.compile(rf".*partner={PARTNER}"))
    assert _listed(page.content()) == {received.ids[role] for role in ("green-1", "green-2", "strict")}
    assert untranslated(page) == []
    check_accessibility(page)
    shoot(page, "browse-partner-ja")  # the same page on either store
    page.context.close()


def test_the_tlp_extension_definition_names_its_creator(received: Console) -> None:
    """The TLP 2.0 extension definition every node carries was made by CISA, whose identity object no node
    holds: its page names the creator instead of showing the bare identity id."""
    session = received.sign_in("uk")
    page = session.get(received.base + f"/console/objects/{TLP2_EXTENSION_ID}?collection=games")
    assert page.status_code == 200, page.text[:300]
    assert f"CISA <code class=\"id\">{TLP2_EXTENSION_CREATOR}</code>" in page.text
    assert f'href="/console/objects/{TLP2_EXTENSION_CREATOR}' not in page.text  # no page to go to
