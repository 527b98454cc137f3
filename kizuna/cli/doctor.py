"""``kizuna doctor URL``: check a partner's TAXII 2.1 server before federating with it.

Read-only unless ``--write COLLECTION`` is given. Prints each check with the TAXII 2.1 section it
tests and a summary (``--json``: one object with every check). The exit status is 0 when no check
failed and 1 when one did, so a script can gate ``partners add`` on it; a URL that is not one, or a
server that does not answer at all, is a failure of the command (one line, or a JSON error).
"""

from __future__ import annotations

import ssl

import click
import httpx

from kizuna.cli.common import CliError, FiniteFloat, emit, json_option
from kizuna.federation.config import ConfigProblem, parse_pin
from kizuna.federation.doctor import (
    FAIL,
    DoctorError,
    Peer,
    auth_headers,
    check_options,
    normalise_url,
    report,
    run_checks,
)
from kizuna.federation.doctor_checks import CHECKS
from kizuna.federation.tls import pinned_transport, tls_files_problem, trust_context

_MARKS = {"pass": "PASS", "fail": "FAIL", "warn": "WARN", "skip": "SKIP"}


@click.command("doctor")
@click.argument("url")
@click.option("--token", default=None, help="Bearer token the partner issued to this node.")
@click.option("--basic", default=None, metavar="USER:PASSWORD", help="HTTP basic credentials instead of a token.")
@click.option("--write", "write_collection", default=None, metavar="COLLECTION",
              help="Also test the write path: post one marked note to this collection id and read it back.")
@click.option("--ca", "ca_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="PEM file of the CA that signed the partner's certificate (default: the system's).")
@click.option("--pin", default=None, metavar="SHA256",
              help="Accept only the server certificate with this SHA-256 fingerprint (64 hex digits, colons "
                   "allowed; https only), as `partners add --pin` will: a self-signed certificate needs no --ca.")
@click.option("--cert", "client_cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="This node's client certificate (PEM), for a partner that requires mutual TLS; needs --key.")
@click.option("--key", "client_key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The private key of --cert (PEM, without a passphrase).")
@click.option("--timeout", type=FiniteFloat(0.1, 600), default=20.0, show_default=True,
              help="Seconds to wait for each answer.")
@json_option
def doctor(url: str, token: str | None, basic: str | None, write_collection: str | None, ca_file: str | None,
           pin: str | None, client_cert: str | None, client_key: str | None, timeout: float, as_json: bool) -> int:
    """Check the TAXII 2.1 server at URL (its /taxii2/ discovery URL or an API root) for conformance."""
    try:
        check_options(token, basic, write_collection)
        pin = parse_pin(pin) if pin is not None else None
        base = normalise_url(url, ca_file, pin)
    except (DoctorError, ConfigProblem) as exc:
        raise CliError(str(exc), code="usage", exit_code=2) from None
    if (problem := tls_files_problem(client_cert, client_key, ca_file)) is not None:
        raise CliError(problem, code="tls", file=client_key or client_cert or ca_file)
    if client_cert is not None and not base.startswith("https://"):
        raise CliError("--cert and --key are for an https:// URL (mutual TLS)", code="usage", exit_code=2)
    verify: ssl.SSLContext = trust_context(ca_file, pin, client_cert, client_key)  # files checked just above
    transport = pinned_transport(verify, pin) if pin is not None else None
    with httpx.Client(timeout=timeout, verify=verify, transport=transport, follow_redirects=False,
                      headers={"User-Agent": "kizuna-doctor"}) as client:
        try:
            client.get(base, headers={"Accept": "application/taxii+json;version=2.1"})
        except httpx.HTTPError as exc:
            if "is not the pinned one" in str(exc):  # checked before any byte of HTTP, so no token was sent
                raise CliError(f"{exc} at {base}", code="tls") from None
            if "certificate has expired" in str(exc):
                raise CliError(f"the TLS certificate of {base} has expired ({exc})", code="tls") from None
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):  # §1.6.2: no trusted TLS, no federation
                hint = "is it the CA that signed it?" if ca_file else "give the CA that signed it with --ca FILE"
                raise CliError(f"the TLS certificate of {base} is not trusted ({exc}); {hint}", code="tls") from None
            if client_cert is None and isinstance(exc, httpx.RemoteProtocolError) and base.startswith("https://"):
                raise CliError(f"nothing answered at {base}: {exc}; a partner that requires mutual TLS closes "
                               "the connection without a client certificate: give this node's with --cert and "
                               "--key", code="unavailable") from None
            raise CliError(f"nothing answered at {base}: {exc or type(exc).__name__}", code="unavailable") from None
        peer = Peer(base, client, auth_headers(token, basic), write_collection, ca_file, pin)
        results = list(run_checks(peer, CHECKS))
    document = report(base, results, peer.refused, peer.write_refused)
    width = max(len(r.id) for r in results)
    lines = [f"{_MARKS[r.status]}  {r.id:<{width}}  {r.section:<12} {r.title}: {r.detail}" for r in results]
    counts = document["summary"]["counts"]
    if peer.refused:
        how = "these credentials" if peer.auth else "a request without credentials"
        verdict = (f"not checked, it refused {how} ({peer.refused}); give the token it issued to "
                   "this node with --token, or --basic, and run again")
    else:
        verdict = "conformant" if document["summary"]["conformant"] else "NOT conformant"
        if peer.write_refused:
            verdict += f" as far as checked, the write path not ({peer.write_refused})"
    lines.append(f"{base}: {verdict} — {counts['pass']} passed, {counts['fail']} failed, "
                 f"{counts['warn']} warnings, {counts['skip']} skipped")
    emit(as_json, document, "\n".join(lines))
    return 1 if peer.refused or any(r.status == FAIL for r in results) else 0


def register(group: click.Group) -> None:
    group.add_command(doctor)
