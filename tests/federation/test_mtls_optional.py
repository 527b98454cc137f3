"""``kizuna serve --client-ca CA --client-cert optional``: a certificate is asked for, verified when sent,
and not required. A browser without one signs in to the console with a token bound to nothing; a
partner node presents its certificate and uses its bound token over TAXII and in the console; a bound
token without its certificate, or with another, is refused on both; a certificate the CA did not issue,
or an expired one, still fails the handshake. Real processes, certificates from trustme.
"""

from __future__ import annotations

import datetime as dt
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme

from tests.conftest import TAXII, ServerProcess, kizuna, start_server
from tests.federation.helpers import FedNode, grant_partner, make_fed_node
from tests.federation.test_mtls import Pair, write_pair


@dataclass
class Optional:
    uk: FedNode
    server: ServerProcess
    ca: Path
    partner: Pair  # the JP node's certificate; JP's token on UK is bound to it
    other: Pair  # from the same CA, bound to nothing
    expired: Pair
    rogue: Pair  # from a CA UK does not trust

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.server.port}"

    def client(self, pair: Pair | None, token: str | None = None) -> httpx.Client:
        verify = pair.context(self.ca) if pair is not None else ssl.create_default_context(cafile=str(self.ca))
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, verify=verify, timeout=30, headers=headers)


@pytest.fixture(scope="module")
def optional(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Optional]:
    base = tmp_path_factory.mktemp("mtls-optional")
    ca, other_ca = trustme.CA(), trustme.CA()
    ca_file = base / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    now = dt.datetime.now(dt.UTC)
    server_pair = write_pair(ca.issue_cert("127.0.0.1", "localhost"), base, "server")
    partner = write_pair(ca.issue_cert("jp-node.example"), base, "jp")
    other = write_pair(ca.issue_cert("other.example"), base, "other")
    expired = write_pair(ca.issue_cert("expired.example", not_before=now - dt.timedelta(days=30),
                                       not_after=now - dt.timedelta(days=1)), base, "expired")
    rogue = write_pair(other_ca.issue_cert("jp-node.example"), base, "rogue")
    uk = make_fed_node(base, "UK", "GBR")
    jp = make_fed_node(base, "JP", "JPN")
    token = grant_partner(uk, jp, "JPN")
    uk.cli_json("tokens", "bind-cert", token.split("_")[1], "--cert", str(partner.cert))
    server = start_server(uk.data_dir, sync=False, extra=(
        "--tls-cert", str(server_pair.cert), "--tls-key", str(server_pair.key), "--client-ca", str(ca_file),
        "--client-cert", "optional"))
    try:
        yield Optional(uk, server, ca_file, partner, other, expired, rogue)
    finally:
        server.stop()


def _sign_in(http: httpx.Client, token: str) -> httpx.Response:
    form = http.get("/console/sign-in")
    assert form.status_code == 200, form.text
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert found
    return http.post("/console/sign-in", data={"csrf": found.group(1), "token": token, "next": "/console/"})


def _signed_in(http: httpx.Client) -> bool:
    """Whether the console serves its home page to this client (not a redirect to sign in)."""
    answer = http.get("/console/")
    return answer.status_code == 200 and "/console/sign-in" not in str(answer.url)


def test_a_browser_without_a_certificate_uses_the_console_with_an_unbound_token(optional: Optional) -> None:
    with optional.client(None) as browser:
        assert _sign_in(browser, optional.uk.admin_token).status_code == 303
        assert _signed_in(browser)
    with optional.client(None, optional.uk.admin_token) as plain:  # and the TAXII API
        answer = plain.get("/main/collections/", headers={"Accept": TAXII})
    assert answer.status_code == 200 and answer.headers["strict-transport-security"].startswith("max-age=")


def test_a_bound_token_needs_its_certificate_over_taxii(optional: Optional) -> None:
    token = optional.uk.tokens["JP"]
    statuses = {}
    for name, pair in {"own": optional.partner, "other": optional.other, "none": None}.items():
        with optional.client(pair, token) as http:
            statuses[name] = http.get("/main/collections/", headers={"Accept": TAXII}).status_code
    assert statuses == {"own": 200, "other": 401, "none": 401}


def test_a_bound_token_signs_in_to_the_console_only_with_its_certificate(optional: Optional) -> None:
    token = optional.uk.tokens["JP"]
    for pair in (None, optional.other):
        with optional.client(pair) as http:
            refused = _sign_in(http, token)
            assert refused.status_code == 401 and not _signed_in(http)
    with optional.client(optional.partner) as holder:
        assert _sign_in(holder, token).status_code == 303
        assert _signed_in(holder)
        cookies = dict(holder.cookies)
    # The session cookie alone, on a connection without the certificate, is not signed in ...
    with optional.client(None) as thief:
        thief.cookies.update(cookies)
        assert not _signed_in(thief)
    # ... and the refusal did not end the session of the browser that holds the certificate.
    with optional.client(optional.partner) as holder_again:
        holder_again.cookies.update(cookies)
        assert _signed_in(holder_again)


@pytest.mark.parametrize("which", ["expired", "rogue"])
def test_a_certificate_that_does_not_verify_still_fails_the_handshake(optional: Optional, which: str) -> None:
    pair = optional.expired if which == "expired" else optional.rogue
    with optional.client(pair, optional.uk.admin_token) as http, pytest.raises(httpx.TransportError):
        http.get("/main/collections/", headers={"Accept": TAXII})


def test_client_cert_without_a_client_ca_is_a_usage_error(optional: Optional) -> None:
    result = kizuna(optional.uk.data_dir, "serve", "--client-cert", "optional", check=False)
    assert result.returncode == 2 and result.stderr.startswith("kizuna serve: --client-cert needs --client-ca")
    assert len(result.stderr.strip().splitlines()) == 1
