"""The TAXII 2.1 client side of a sync: one partner, its API root, its credentials.

Every failure becomes a :class:`PartnerError` that says what went wrong in words an operator can act
on; the sync turns it into backoff and a partner status.  Pages are parsed with the same exact JSON
reader the node's own ingest uses, so numbers and strings cross unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from kizuna.federation.config import PartnerConfig
from kizuna.federation.tls import partner_ssl_context, partner_transport
from kizuna.stix.jsonio import loads_exact
from kizuna.taxii.media import TERMS_HEADER

TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1"


class PartnerError(Exception):
    """The partner could not be synced this time (down, slow, refused, or sent garbage)."""

    def __init__(self, message: str, kind: str = "unavailable", status_code: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind  # unavailable | refused | malformed | expired-cursor
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class RemotePage:
    objects: list[Any]
    more: bool
    next: str | None
    date_added_first: str | None
    date_added_last: str | None
    #: A Kizuna partner's digest of the terms we read under (``TERMS_HEADER``); None from other servers.
    terms: str | None = None


def http_client(partner: PartnerConfig, accept: str, timeout_s: float = 60.0, **options: Any) -> httpx.Client:
    """An HTTP client that presents the partner's credentials (bearer or basic, client certificate)
    and checks its server against its CA file or pinned certificate, if any (federation/tls.py)."""
    headers = {"Accept": accept, "User-Agent": "kizuna-federation"}
    auth: httpx.BasicAuth | None = None
    if partner.token:
        headers["Authorization"] = f"Bearer {partner.token}"
    elif partner.basic_auth:
        user, _, password = partner.basic_auth.partition(":")
        auth = httpx.BasicAuth(user, password)
    return httpx.Client(
        headers=headers, auth=auth, verify=partner_ssl_context(partner), transport=partner_transport(partner),
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)), **options,
    )


class TaxiiClient:
    def __init__(self, partner: PartnerConfig, timeout_s: float = 60.0) -> None:
        self.partner = partner
        self._client = http_client(partner, TAXII_MEDIA_TYPE, timeout_s, base_url=partner.base_url,
                                   follow_redirects=False)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> TaxiiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str) -> httpx.Response:
        """A GET of ``path`` under the API root, its failures worded as a sync words them."""
        return self._request("GET", path)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise PartnerError(f"{self.partner.name}: timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise PartnerError(f"{self.partner.name}: cannot reach {self.partner.base_url}: {exc}") from None
        if response.status_code >= 500:
            raise PartnerError(
                f"{self.partner.name}: server error {response.status_code} on {method} {path}",
                status_code=response.status_code,
            )
        if response.status_code in (401, 403, 404):
            raise PartnerError(
                f"{self.partner.name}: {response.status_code} on {method} {path}: check the token, the API root "
                "and the collection mapping",
                kind="refused", status_code=response.status_code,
            )
        return response

    @staticmethod
    def _json(response: httpx.Response, what: str) -> Any:
        try:
            return loads_exact(response.content)
        except orjson.JSONDecodeError:
            raise PartnerError(f"{what}: the response is not JSON", kind="malformed") from None

    def get_objects(self, collection: str, params: dict[str, str]) -> RemotePage:
        path = f"collections/{collection}/objects/"
        response = self._request("GET", path, params=params)
        if response.status_code == 400 and "next" in params:
            raise PartnerError(f"{self.partner.name}: the partner refused our 'next' cursor", kind="expired-cursor")
        if response.status_code != 200:
            raise PartnerError(
                f"{self.partner.name}: GET {path} answered {response.status_code}: {response.text[:200]}",
                kind="refused", status_code=response.status_code,
            )
        envelope = self._json(response, f"{self.partner.name}: GET {path}")
        if not isinstance(envelope, dict):
            raise PartnerError(f"{self.partner.name}: GET {path}: the page is not a TAXII envelope", kind="malformed")
        objects = envelope.get("objects", [])
        more = envelope.get("more", False)
        token = envelope.get("next")
        if not isinstance(objects, list) or not isinstance(more, bool) or not (token is None or isinstance(token, str)):
            raise PartnerError(
                f"{self.partner.name}: GET {path}: the envelope's objects/more/next have the wrong types",
                kind="malformed",
            )
        return RemotePage(
            objects, more, token or None,
            response.headers.get("X-TAXII-Date-Added-First"), response.headers.get("X-TAXII-Date-Added-Last"),
            response.headers.get(TERMS_HEADER),
        )

    def post_objects(self, collection: str, envelope: bytes) -> dict[str, Any]:
        path = f"collections/{collection}/objects/"
        response = self._request(
            "POST", path, content=envelope, headers={"Content-Type": TAXII_MEDIA_TYPE},
        )
        if response.status_code not in (200, 202):
            raise PartnerError(
                f"{self.partner.name}: POST {path} answered {response.status_code}: {response.text[:200]}",
                kind="refused", status_code=response.status_code,
            )
        status = self._json(response, f"{self.partner.name}: POST {path}")
        if not isinstance(status, dict):
            raise PartnerError(f"{self.partner.name}: POST {path}: the answer is not a status", kind="malformed")
        return status

    def delete_object(self, collection: str, stix_id: str, version: str | None) -> bool:
        """TAXII DELETE of one version (all versions with ``version`` None); False if the partner had none."""
        path = f"collections/{collection}/objects/{stix_id}/"
        params = {"match[version]": version} if version is not None else {}
        try:
            response = self._request("DELETE", path, params=params)
        except PartnerError as exc:
            if exc.status_code == 404:
                return False
            raise
        if response.status_code != 200:
            raise PartnerError(
                f"{self.partner.name}: DELETE {path} answered {response.status_code}: {response.text[:200]}",
                kind="refused", status_code=response.status_code,
            )
        return True

    def get_tombstones(self, collection: str, params: dict[str, str]) -> dict[str, Any] | None:
        """The Kizuna tombstones extension page, or None when the partner does not offer it (not Kizuna)."""
        path = f"collections/{collection}/tombstones/"
        try:
            response = self._request("GET", path, params=params)
        except PartnerError as exc:
            if exc.status_code == 404:
                return None
            raise
        if response.status_code in (400, 405, 406):
            return None
        page = self._json(response, f"{self.partner.name}: GET {path}")
        if (
            response.status_code != 200 or not isinstance(page, dict)
            or not isinstance(page.get("tombstones"), list) or not isinstance(page.get("more"), bool)
            or not isinstance(page.get("deleted_last"), int) or not isinstance(page.get("withdrawn_last"), int)
        ):
            raise PartnerError(f"{self.partner.name}: GET {path}: not a tombstones page", kind="malformed")
        return page
