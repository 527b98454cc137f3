"""An http(s) import source, downloaded to a local file first: bounded in size and time.

Downloading whole before converting is what keeps "nothing half-imported" true for a URL too, and
lets the format be sniffed from the content like a file's.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx

from kizuna.cli.common import CliError
from kizuna.numerals import whole_number

_CHUNK = 1024 * 1024


def is_url(source: str) -> bool:
    try:
        return urlsplit(source).scheme.lower() in ("http", "https")
    except ValueError:  # an authority urlsplit cannot read ('http://[::1'): still meant as a URL, refused by fetch_url
        return source.lower().startswith(("http://", "https://"))


def fetch_url(url: str, directory: Path, *, max_bytes: int, timeout: float) -> Path:
    """The body of ``url`` in a file under ``directory``; CliError for a failure, a non-2xx or too much."""
    try:
        name = Path(urlsplit(url).path).name or "download"
    except ValueError as exc:
        raise CliError(f"not a URL that can be fetched ({exc})", code="usage", file=url) from None
    target = directory / name
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            if response.status_code // 100 != 2:
                raise CliError(f"the server answered HTTP {response.status_code}", code="http", file=url)
            declared = response.headers.get("content-length")
            if declared is not None and (whole_number(declared) or 0) > max_bytes:
                raise CliError(f"the download is {declared} bytes, more than --max-bytes {max_bytes}",
                               code="too-large", file=url)
            size = 0
            with target.open("wb") as out:
                for chunk in response.iter_bytes(_CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise CliError(f"the download is larger than --max-bytes {max_bytes}", code="too-large",
                                       file=url)
                    out.write(chunk)
    except httpx.TimeoutException:
        raise CliError(f"no answer within {timeout:g} s", code="http", file=url) from None
    except httpx.HTTPError as exc:
        raise CliError(f"cannot download: {' '.join(str(exc).split()) or type(exc).__name__}", code="http",
                       file=url) from None
    return target
