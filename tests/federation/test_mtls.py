"""Mutual TLS between two real nodes: ``kizuna serve --tls-cert --tls-key --client-ca`` on one side,
``partners add --ca/--pin --cert --key`` and ``kizuna sync`` on the other, with certificates from
trustme. What must work works; a wrong CA, an expired certificate, a missing one, a token bound to
another certificate and a wrong pin are each refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from tests.conftest import TAXII, ServerProcess, kizuna, kizuna_json, start_server
from tests.federation.helpers import FedNode, grant_partner, indicator, make_fed_node, sync


@dataclass
class Pair:
    """A client certificate and key as PEM files."""

    cert: Path
    key: Path

    def context(self, ca: Path) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


def write_pair(issued: trustme.LeafCert, base: Path, name: str) -> Pair:
    pair = Pair(base / f"{name}.pem", base / f"{name}.key")
    pair.cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(pair.key))
    return pair


def fingerprint(pair: Pair) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pair.cert.read_text())).hexdigest()


@dataclass
class World:
    uk: FedNode  # serves HTTPS and requires client certificates
    jp: FedNode  # syncs from uk as a partner
    server: ServerProcess
    ca: Path
    other_ca: Path
    jp_cert: Pair  # jp's certificate; jp's token on uk is bound to it
    second_cert: Pair  # from the same CA, bound to nothing
    expired: Pair
    rogue: Pair  # from a CA uk does not trust
    server_pair: Pair

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.port}/main/"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("mtls")
    ca, other = trustme.CA(), trustme.CA()
    ca_file, other_file = base / "ca.pem", base / "other-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    other.cert_pem.write_to_path(str(other_file))
    now = dt.datetime.now(dt.UTC)
    server_pair = write_pair(ca.issue_cert("127.0.0.1", "localhost"), base, "server")
    jp_cert = write_pair(ca.issue_cert("jp-node.example"), base, "jp")
    second = write_pair(ca.issue_cert("second.example"), base, "second")
    expired = write_pair(ca.issue_cert("expired.example", not_before=now - dt.timedelta(days=30),
                                       not_after=now - dt.timedelta(days=1)), base, "expired")
    rogue = write_pair(other.issue_cert("jp-node.example"), base, "rogue")

    uk = make_fed_node(base, "UK", "GBR")
    jp = make_fed_node(base, "JP", "JPN")
    token = grant_partner(uk, jp, "JPN")
    token_id = token.split("_")[1]
    bound = uk.cli_json("tokens", "bind-cert", token_id, "--cert", str(jp_cert.cert))
    assert bound["certificate"] == fingerprint(jp_cert)
    server = start_server(uk.data_dir, sync=False, extra=(
        "--tls-cert", str(server_pair.cert), "--tls-key", str(server_pair.key), "--client-ca", str(ca_file)))
    uk.server = server
    built = World(uk, jp, server, ca_file, other_file, jp_cert, second, expired, rogue, server_pair)
    try:
        with client(built, jp_cert, uk.admin_token) as http:  # the admin token is bound to nothing
            posted = http.post(f"collections/{uk.collection}/objects/", content=envelope(indicator(uk.identity, 2)),
                               headers={"Content-Type": TAXII})
            assert posted.status_code == 202, posted.text
        yield built
    finally:
        server.stop()


def envelope(objects: list[dict[str, object]]) -> bytes:
    import json

    return json.dumps({"objects": objects}).encode()


def client(world: World, pair: Pair | None, token: str, trust: Path | None = None) -> httpx.Client:
    if pair is not None:
        verify = pair.context(trust or world.ca)
    else:
        verify = ssl.create_default_context(cafile=str(trust or world.ca))
    return httpx.Client(base_url=world.url, verify=verify, timeout=30,
                        headers={"Accept": TAXII, "Authorization": f"Bearer {token}"})


def test_the_bound_certificate_and_its_token_are_served_with_hsts(world: World) -> None:
    with client(world, world.jp_cert, world.uk.tokens["JP"]) as http:
        response = http.get("collections/")
    assert response.status_code == 200
    assert [c["id"] for c in response.json()["collections"]] == [world.uk.collection]
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_token_bound_to_another_certificate_is_refused(world: World) -> None:
    with client(world, world.second_cert, world.uk.tokens["JP"]) as http:
        response = http.get("collections/")
    assert response.status_code == 401
    assert response.headers["content-type"] == TAXII and response.json()["http_status"] == "401"


@pytest.mark.parametrize("which", ["expired", "rogue", "none"])
def test_a_client_without_a_valid_certificate_is_refused_in_the_handshake(world: World, which: str) -> None:
    pair = {"expired": world.expired, "rogue": world.rogue, "none": None}[which]
    with client(world, pair, world.uk.admin_token) as http, pytest.raises(httpx.TransportError):
        http.get("collections/")


def test_a_client_that_does_not_trust_the_server_refuses_it(world: World) -> None:
    with client(world, world.jp_cert, world.uk.admin_token, trust=world.other_ca) as http, \
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        http.get("collections/")


def add(world: World, name: str, *options: str) -> Any:
    return kizuna_json(world.jp.data_dir, "partners", "add", name, "--url", world.url,
                "--map", f"shared={world.uk.collection}:pull", "--token", world.uk.tokens["JP"], *options)


def run_error(world: World, name: str) -> str | None:
    runs = {run["partner"]: run for run in sync(world.jp, name, check=False)["runs"]}
    error: str | None = runs[name]["error"]
    return error


def test_federation_over_mutual_tls_pulls_and_each_wrong_setting_is_refused(world: World) -> None:
    jp = world.jp
    added = add(world, "UK", "--ca", str(world.ca), "--cert", str(world.jp_cert.cert), "--key",
                str(world.jp_cert.key))
    assert (added["checked"], added["notes"]) == (True, [])  # asked over mutual TLS when it was added
    assert run_error(world, "UK") is None
    assert len(jp.versions()) == 2

    server_pin = fingerprint(world.server_pair)
    add(world, "UK-PINNED", "--pin", ":".join(server_pin[i:i + 2] for i in range(0, 64, 2)).upper(),
        "--cert", str(world.jp_cert.cert), "--key", str(world.jp_cert.key))
    assert run_error(world, "UK-PINNED") is None

    # A TLS failure may be the operator's to fix or the partner's certificate about to change: a note, not a refusal.
    added = add(world, "UK-WRONG-PIN", "--pin", "ab" * 32, "--cert", str(world.jp_cert.cert), "--key",
                str(world.jp_cert.key))
    assert "not the pinned one" in added["notes"][0], added["notes"]
    assert "not the pinned one" in (run_error(world, "UK-WRONG-PIN") or "")

    add(world, "UK-WRONG-CA", "--ca", str(world.other_ca), "--cert", str(world.jp_cert.cert),
        "--key", str(world.jp_cert.key))
    assert "CERTIFICATE_VERIFY_FAILED" in (run_error(world, "UK-WRONG-CA") or "")

    # A certificate the partner does not bind to the token: `partners add` asks the partner and is refused.
    other_cert = ("--ca", str(world.ca), "--cert", str(world.second_cert.cert), "--key", str(world.second_cert.key))
    refused = kizuna(world.jp.data_dir, "partners", "add", "UK-OTHER-CERT", "--url", world.url, "--map",
                     f"shared={world.uk.collection}:pull", "--token", world.uk.tokens["JP"], *other_cert, check=False)
    assert refused.returncode == 1 and "answered 401" in refused.stderr, refused.stderr
    add(world, "UK-OTHER-CERT", *other_cert, "--no-check")  # stored all the same: the sync says the same
    assert "401" in (run_error(world, "UK-OTHER-CERT") or "")

    add(world, "UK-NO-CERT", "--ca", str(world.ca))
    assert "cannot reach" in (run_error(world, "UK-NO-CERT") or "")

    # Each partner added is in the audit chain, without its token, and the chain verifies.
    exported = jp.cli("audit", "export", "--kind", "partner-added").stdout
    assert len(exported.splitlines()) == 6 and world.uk.tokens["JP"] not in exported
    assert jp.cli_json("audit", "verify")["ok"] is True


def test_doctor_checks_a_partner_that_requires_mutual_tls_with_this_node_s_certificate(world: World) -> None:
    """Without --cert/--key doctor could not check such a partner at all, and said only that nothing answered."""
    token = world.uk.tokens["JP"]
    common = ["doctor", world.url.replace("/main/", "/taxii2/"), "--token", token, "--ca", str(world.ca)]
    checked = world.jp.cli(*common, "--cert", str(world.jp_cert.cert), "--key", str(world.jp_cert.key), "--json",
                           check=False)
    assert checked.returncode == 0, checked.stdout
    assert json.loads(checked.stdout)["summary"]["conformant"] is True
    bare = world.jp.cli(*common, "--json", check=False)
    assert bare.returncode != 0 and "give this node's with --cert and --key" in json.loads(bare.stdout)["error"][
        "message"]


def test_doctor_checks_a_partner_by_its_pinned_certificate_as_partners_add_will(world: World) -> None:
    """doctor had no --pin: a partner trusted by its pinned (say self-signed) certificate could not be checked
    the way it would be federated with."""
    token, pin = world.uk.tokens["JP"], fingerprint(world.server_pair)
    common = ["doctor", world.url.replace("/main/", "/taxii2/"), "--token", token,
              "--cert", str(world.jp_cert.cert), "--key", str(world.jp_cert.key)]
    pasted = ":".join(pin[i:i + 2] for i in range(0, 64, 2)).upper()
    checked = world.jp.cli(*common, "--pin", pasted, "--json", check=False)  # no --ca: the pin is the trust
    assert checked.returncode == 0, checked.stdout
    document = json.loads(checked.stdout)
    assert document["summary"]["conformant"] is True
    assert {c["id"]: c["detail"] for c in document["checks"]}["tls"] == "HTTPS with the pinned certificate"
    wrong = world.jp.cli(*common, "--pin", "ab" * 32, check=False)
    assert wrong.returncode == 1 and wrong.stdout == ""
    assert wrong.stderr.startswith(f"kizuna doctor: the server certificate (SHA-256 {pin}) is not the pinned one "
                                   f"({'ab' * 32}) at ") and len(wrong.stderr.splitlines()) == 1
    short = world.jp.cli(*common, "--pin", "ab12", "--json", check=False)
    assert short.returncode == 2 and "64 hex digits" in json.loads(short.stdout)["error"]["message"]
    plain = world.jp.cli("doctor", "http://127.0.0.1:9/taxii2/", "--pin", pin, check=False)
    assert plain.returncode == 2 and plain.stderr.startswith("kizuna doctor: --pin needs an https:// URL")


def test_an_expired_certificate_is_refused_when_it_is_given_not_at_the_first_handshake(world: World) -> None:
    """It was taken by partners add, tokens create/bind-cert and serve, and failed only at the first sync as a
    closed connection."""
    jp, uk, pair = world.jp, world.uk, world.expired
    added = jp.cli("partners", "add", "UK-EXPIRED", "--url", world.url, "--map", f"shared={uk.collection}:pull",
                   "--token", uk.tokens["JP"], "--cert", str(pair.cert), "--key", str(pair.key), check=False)
    assert added.returncode != 0 and added.stderr.startswith(
        f"kizuna partners add: --cert {pair.cert} expired on ") and len(added.stderr.splitlines()) == 1
    created = uk.cli("tokens", "create", "--org", "JP national CERT", "--read", "shared", "--cert", str(pair.cert),
                     check=False)
    assert created.returncode != 0 and f"the certificate in {pair.cert} expired on " in created.stderr
    served = uk.cli("serve", "--port", "9", "--tls-cert", str(pair.cert), "--tls-key", str(pair.key), check=False)
    assert served.returncode != 0 and served.stderr.startswith(f"kizuna serve: --tls-cert {pair.cert} expired on ")
