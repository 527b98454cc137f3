"""``kizuna doctor``: a TAXII 2.1 conformance check of a partner's server, before federating with it.

Each check makes one or a few requests and compares the answer with what the TAXII 2.1 section
it names requires of a server; the result is pass, fail, warn (allowed by the specification but
likely to trouble a sync) or skip (nothing to test it on, e.g. an empty collection). Without
``write_collection`` every request is a GET, so a peer's operator can let a partner run it
against production; with it, one marked ``note`` is posted to that collection and read back.

The checks live in doctor_checks.py; this module holds the client, the result type and the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urljoin

import httpx
import orjson

from kizuna.federation.config import (
    ConfigProblem,
    check_credentials,
    check_http_url,
    check_tls_over_https,
    is_collection_ref,
)

TAXII = "application/taxii+json;version=2.1"
PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"


class DoctorError(Exception):
    """The check cannot start: the URL is not one, or nothing answers there."""


@dataclass
class CheckResult:
    id: str
    section: str  # the TAXII 2.1 section the check tests
    title: str
    status: str
    detail: str = ""


class Finding(Exception):
    """Raised inside a check to end it with a status other than pass."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def fail(detail: str) -> Finding:
    return Finding(FAIL, detail)


def expect(condition: bool, detail: str) -> None:
    if not condition:
        raise fail(detail)


@dataclass
class Answer:
    """One HTTP answer, its JSON body parsed when it is JSON."""

    status: int
    headers: httpx.Headers
    body: bytes
    url: str

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").replace(" ", "").lower()

    def said(self, limit: int = 160) -> str:
        """The body in words: a TAXII error object's title and description, else its text, cut short."""
        try:
            body = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("title"), str):
            text = body["title"] + (f": {body['description']}" if isinstance(body.get("description"), str) else "")
        else:
            text = self.body[: limit * 4].decode("utf-8", "replace")  # enough for the words shown
        text = " ".join(text.split())
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def json(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise fail(f"{self.url} answered {self.status} with a body that is not JSON: {self.said(80)}") from None

    def taxii_json(self, status: int = 200) -> Any:
        expect(self.status == status, f"{self.url} answered {self.status}, expected {status}: {self.said()}")
        expect(self.media_type.startswith("application/taxii+json"),
               f"{self.url} answered with Content-Type {self.media_type or 'none'!r}, not {TAXII}")
        return self.json()


@dataclass
class Peer:
    """The peer as the checks learn it: each check adds what later ones need."""

    url: str
    client: httpx.Client
    auth: dict[str, str]
    write_collection: str | None = None
    ca_file: str | None = None  # the CA file given with --ca, when the system's CAs are not the trust
    pin: str | None = None  # the server certificate's SHA-256 given with --pin
    discovery_url: str | None = None
    api_root_url: str | None = None
    max_content_length: int | None = None
    collections: list[dict[str, Any]] = field(default_factory=list)
    readable: dict[str, Any] | None = None  # the first collection it may read
    manifest: list[dict[str, Any]] = field(default_factory=list)  # records of the readable collection
    # A 401/403 to the first request that carried the credentials given (discovery, or the API root):
    # the checks then say little about the server, so the verdict names the credentials instead of
    # calling the server non-conformant. A later 403 (a collection the token may not write) is a finding.
    refused: str | None = None
    asked: bool = False
    #: Whether the check running now met a 401/403 after the credentials were refused: its failure is then
    #: the credentials', and the check is reported as not checked rather than failed.
    refused_here: bool = False
    #: Why the --write collection was refused (403/404): the operator's mistake, failed but not the server's.
    write_refused: str | None = None

    def get(self, url: str, params: dict[str, str] | None = None, accept: str | None = TAXII,
            credentials: bool = True) -> Answer:
        headers = dict(self.auth) if credentials else {}
        if accept is not None:
            headers["Accept"] = accept
        try:
            response = self.client.get(url, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise fail(f"GET {url} failed: {exc}") from None
        answer = Answer(response.status_code, response.headers, response.content, str(response.url))
        if credentials and not self.asked:
            self.asked = True
            if answer.status in (401, 403):
                self.refused = f"{answer.status} {answer.said()}"
        if credentials and self.refused is not None and answer.status in (401, 403):
            self.refused_here = True
        return answer

    def post(self, url: str, body: bytes) -> Answer:
        headers = {**self.auth, "Accept": TAXII, "Content-Type": TAXII}
        try:
            response = self.client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise fail(f"POST {url} failed: {exc}") from None
        return Answer(response.status_code, response.headers, response.content, str(response.url))

    def collection_url(self, collection: dict[str, Any]) -> str:
        assert self.api_root_url is not None
        return urljoin(self.api_root_url, f"collections/{collection['id']}/")

    def need_collection(self) -> dict[str, Any]:
        if self.readable is None:
            raise Finding(SKIP, "no collection this token may read")
        return self.readable

    def need_objects(self) -> list[dict[str, Any]]:
        self.need_collection()
        if not self.manifest:
            raise Finding(SKIP, "the readable collection is empty")
        return self.manifest


Check = Callable[[Peer], str]


@dataclass(frozen=True)
class CheckSpec:
    id: str
    section: str
    title: str
    run: Check
    writes: bool = False


def normalise_url(url: str, ca_file: str | None = None, pin: str | None = None) -> str:
    """The URL checked as `partners add` checks a partner's, ending with '/' (and --ca, --pin only with https://)."""
    try:
        check_http_url(url, "URL")
        check_tls_over_https(url, {"--ca": ca_file, "--pin": pin})
    except ConfigProblem as exc:
        raise DoctorError(str(exc)) from None
    return url if url.endswith("/") else url + "/"


def check_options(token: str | None, basic: str | None, write_collection: str | None) -> None:
    """The credentials and --write collection as they can be sent (a usage error otherwise)."""
    try:
        check_credentials(token, basic)
    except ConfigProblem as exc:
        raise DoctorError(str(exc)) from None
    if write_collection is not None and not is_collection_ref(write_collection):
        raise DoctorError(f"--write {write_collection!r}: give the id or alias of a collection to write to")


def auth_headers(token: str | None, basic: str | None) -> dict[str, str]:
    if token:
        return {"Authorization": f"Bearer {token}"}
    if basic:
        return {"Authorization": httpx.BasicAuth(*basic.partition(":")[::2])._auth_header}
    return {}


def run_checks(peer: Peer, checks: list[CheckSpec]) -> Iterator[CheckResult]:
    """Each check in order; one that needs an earlier answer it did not get is skipped, not failed."""
    for spec in checks:
        if spec.writes and peer.write_collection is None:
            continue
        peer.refused_here = False
        try:
            detail = spec.run(peer)
            status = PASS
        except Finding as finding:
            status, detail = finding.status, finding.detail
        if status == FAIL and peer.refused_here:
            status, detail = SKIP, f"not checked, the credentials were refused: {detail}"
        yield CheckResult(spec.id, spec.section, spec.title, status, detail)


def summary(results: list[CheckResult], refused: str | None = None,
            write_refused: str | None = None) -> dict[str, Any]:
    """``conformant`` is None (not known) when the server refused the credentials given; a refused
    --write (``write_refused``) fails its check but is the operator's mistake, not the server's."""
    counts = {s: sum(1 for r in results if r.status == s) for s in (PASS, FAIL, WARN, SKIP)}
    conformant = None if refused else counts[FAIL] - (1 if write_refused else 0) == 0
    return {"conformant": conformant, "credentials_refused": refused, "write_refused": write_refused,
            "counts": counts}


def report(url: str, results: list[CheckResult], refused: str | None = None,
           write_refused: str | None = None) -> dict[str, Any]:
    return {"url": url, "checks": [asdict(r) for r in results],
            "summary": summary(results, refused, write_refused)}
