"""What ``kizuna serve`` checks before it listens: the TLS files it was given, and the rate limit.

A certificate that does not load, a key that does not match it or a CA file that holds no CA are
reported here as one line, before uvicorn starts and fails with a traceback in a worker process.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from kizuna.cli.common import CliError
from kizuna.core.limits import DEFAULT_RATE_PER_S, RequestLimits
from kizuna.core.tokens import certificate_expired_on

_RATE = re.compile(r"^([0-9]{1,6}(?:\.[0-9]{1,3})?)(?:/s)?$")
_FAILURES = re.compile(r"^([0-9]{1,6})(?:/min)?$")


#: ``serve --client-cert``: with ``required`` a connection without a certificate from --client-ca fails its
#: handshake; with ``optional`` one is asked for and verified when sent, and a connection without one
#: (a browser opening the console) is served, its tokens then only those bound to no certificate.
#: By name: ``ssl`` is imported when a server is given TLS files, not by every command of this module.
CLIENT_CERT_MODES = ("optional", "required")


def serve_tls_options(cert: str | None, key: str | None, client_ca: str | None,
                      client_cert: str = "required") -> dict[str, Any]:
    """uvicorn's ssl_* keyword arguments for the files given, checked by loading them once."""
    if cert is None and key is None:
        if client_ca is not None:
            raise CliError("--client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)", code="usage")
        return {}
    if cert is None or key is None:
        raise CliError("--tls-cert and --tls-key go together", code="usage")
    import ssl  # on first use: only a server given TLS files needs it (see CLIENT_CERT_MODES)

    from kizuna.federation.tls import key_problem, load_key_pair  # likewise: it loads ssl and the HTTP client

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    for path in (cert, key, client_ca):
        if path is not None and not Path(path).is_file():
            raise CliError(f"no such file {path!r}", code="io", file=path)
    if (expired := certificate_expired_on(Path(cert).read_bytes())) is not None:
        raise CliError(f"--tls-cert {cert} expired on {expired}: partners would refuse it in the handshake",
                       code="tls", file=cert)
    try:
        load_key_pair(context, cert, key)
    except ssl.SSLError as exc:
        if "ENCRYPTED_KEY" in str(exc):
            raise CliError(key_problem(key, "--tls-key"), code="tls", file=key) from None
        raise CliError(f"cannot use {cert} with key {key}: {exc.reason or exc}", code="tls", file=cert) from None
    options: dict[str, Any] = {"ssl_certfile": cert, "ssl_keyfile": key}
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except ssl.SSLError as exc:
            raise CliError(f"cannot read CA certificates from {client_ca}: {exc.reason or exc}",
                           code="tls", file=client_ca) from None
        if not context.get_ca_certs():
            raise CliError(f"{client_ca} holds no CA certificate", code="tls", file=client_ca)
        options["ssl_ca_certs"] = client_ca
        options["ssl_cert_reqs"] = ssl.CERT_OPTIONAL if client_cert == "optional" else ssl.CERT_REQUIRED
    return options


def parse_rate_limit(text: str | None, auth_failures: str, scope: str = "process") -> RequestLimits:
    """The limits for ``--rate-limit N/s`` (0 or absent: none) and ``--auth-failures N/min`` (0: none)."""
    found_failures = _FAILURES.match(auth_failures.strip())
    if found_failures is None:
        raise CliError(f"--auth-failures {auth_failures!r} must read N/min, e.g. 60/min (0 turns it off)",
                       code="usage")
    rate = DEFAULT_RATE_PER_S
    if text is not None:
        found = _RATE.match(text.strip())
        if found is None:
            raise CliError(f"rate limit {text!r} must read N/s, e.g. 50/s (0 turns limiting off)", code="usage")
        rate = float(found.group(1))
    return RequestLimits(rate, int(found_failures.group(1)), scope)
