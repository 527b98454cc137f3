"""How this node trusts a partner's server, and proves itself to it: CA, pinned certificate, client cert.

A partner is trusted in one of three ways: the system's CAs (the default), a CA file given with
``partners add --ca`` (only certificates it issued are accepted), or a pinned certificate given with
``--pin SHA256`` (exactly that server certificate, self-signed or not; with ``--ca`` as well, both must
hold). A pin is checked right after the TLS handshake and before a single byte of HTTP is written, so
a server with the wrong certificate never sees this node's token. The client certificate and key, when
configured, are presented on every connection: that is the node's half of mutual TLS.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from kizuna.core.tokens import certificate_expired_on
from kizuna.federation.config import PartnerConfig


class PinMismatch(httpcore.ConnectError):
    """The partner's server certificate is not the pinned one (raised before any request is sent)."""


class _PinnedStream(httpcore.NetworkStream):
    """A connection that checks the server certificate's fingerprint when TLS starts."""

    def __init__(self, stream: httpcore.NetworkStream, pin: str) -> None:
        self._stream = stream
        self._pin = pin

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        secured = self._stream.start_tls(ssl_context, server_hostname, timeout)
        ssl_object = secured.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(True) if ssl_object is not None else None
        seen = hashlib.sha256(der).hexdigest() if der else ""
        if not hmac.compare_digest(seen, self._pin):
            secured.close()
            raise PinMismatch(f"the server certificate (SHA-256 {seen or 'none'}) is not the pinned one "
                              f"({self._pin})")
        return secured


class _PinnedBackend(httpcore.NetworkBackend):
    def __init__(self, pin: str) -> None:
        self._backend = httpcore.SyncBackend()
        self._pin = pin

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _PinnedStream(stream, self._pin)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def load_key_pair(context: ssl.SSLContext, cert: str, key: str) -> None:
    """``context.load_cert_chain`` without OpenSSL's passphrase prompt: a key kept under a passphrase is refused
    (``ssl.SSLError`` with reason ``ENCRYPTED_KEY``), since a node starts and syncs unattended."""
    context.load_cert_chain(cert, key, password=_no_passphrase)


def _no_passphrase() -> bytes:
    raise ssl.SSLError("ENCRYPTED_KEY")


def key_problem(key: str, option: str) -> str:
    """What to say of a key ``load_key_pair`` refused as encrypted."""
    return (f"{option} {key} is kept under a passphrase; give the key without one "
            f"(openssl pkey -in {key} -out KEY.pem), readable by this node only")


def tls_files_problem(cert: str | None, key: str | None, ca: str | None) -> str | None:
    """Why these files cannot make this node's TLS settings (named by the options that gave them), or None.
    Checked when a partner is added and before doctor connects: a key that is not the certificate's, or a
    "CA file" holding no certificate, would otherwise fail only at the first sync, as an SSL error code."""
    if (cert is None) != (key is None):
        return "--cert and --key go together: the client certificate and its key"
    if ca is not None:
        try:
            ssl.create_default_context(cafile=ca)
        except (ssl.SSLError, ValueError) as exc:
            return f"--ca {ca}: no PEM certificate could be read from it ({getattr(exc, 'reason', None) or exc})"
    if cert is not None and key is not None:
        try:
            with open(cert, "rb") as handle:
                expired = certificate_expired_on(handle.read())
        except OSError:
            expired = None  # unreadable: loading it below says why
        if expired is not None:
            return f"--cert {cert} expired on {expired}: the partner would refuse it in the handshake"
        try:
            load_key_pair(ssl.create_default_context(), cert, key)
        except ssl.SSLError as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            if "ENCRYPTED_KEY" in str(exc):
                return key_problem(key, "--key")
            if reason == "KEY_VALUES_MISMATCH":
                return f"--key {key} is not the key of the certificate --cert {cert}"
            return f"--cert {cert} with --key {key}: not a PEM certificate and its key ({reason})"
    return None


def partner_ssl_context(partner: PartnerConfig) -> ssl.SSLContext:
    """The TLS settings for talking to ``partner``: whom to trust, and which certificate to present."""
    return trust_context(partner.ca_file, partner.pin_sha256, partner.client_cert, partner.client_key)


def trust_context(ca_file: str | None, pin: str | None, cert: str | None, key: str | None) -> ssl.SSLContext:
    """Whom to trust (``ca_file``, else the system's; a ``pin`` alone is the trust) and which certificate to present:
    a partner's settings, or doctor's options before there is a partner."""
    context = ssl.create_default_context(cafile=ca_file)
    if pin and not ca_file:
        # The pin is the trust: a self-signed partner certificate need not chain to any CA or name the host.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert and key:
        load_key_pair(context, cert, key)
    return context


def partner_transport(partner: PartnerConfig) -> httpx.HTTPTransport | None:
    """A transport that enforces the partner's pin, or None when it has none (httpx's default then)."""
    if not partner.pin_sha256:
        return None
    return pinned_transport(partner_ssl_context(partner), partner.pin_sha256)


def pinned_transport(context: ssl.SSLContext, pin: str) -> httpx.HTTPTransport:
    """A transport over ``context`` that accepts only the server certificate whose SHA-256 is ``pin``."""
    transport = httpx.HTTPTransport(verify=context, trust_env=False)
    # httpx builds its pool without a way to choose the network backend; this pool is the same one
    # with the pinning backend, so the check runs inside every TLS connection the client opens.
    transport._pool = httpcore.ConnectionPool(ssl_context=context, network_backend=_PinnedBackend(pin))
    return transport
