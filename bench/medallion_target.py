"""The OASIS reference TAXII 2.1 server, medallion (memory backend), as a benchmark target.

It runs as a real subprocess on a free loopback port with a generated configuration: one API root, one
collection, one basic-auth user. Its ingest and filters scan the whole collection, so both phases have time
caps and a page that does not come back in time is reported as a timeout, not as a number.

    python -m bench.medallion_target --count 10000 [--page-timeout 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import (
    TAXII_MEDIA_TYPE,
    VENV_BIN,
    ServerProcess,
    free_loopback_port,
    page_latencies,
    positive_int,
    post_envelopes,
)
from bench.gen_stix import envelopes

API_ROOT = "bench"
USER = ("bench", "bench-password")


def write_config(directory: Path, port: int) -> tuple[Path, str]:
    """Write medallion's data file and configuration; returns (config path, collection id)."""
    collection_id = str(uuid.uuid4())
    data = {
        "/discovery": {
            "title": "medallion benchmark",
            "default": f"http://127.0.0.1:{port}/{API_ROOT}/",
            "api_roots": [f"http://127.0.0.1:{port}/{API_ROOT}/"],
        },
        API_ROOT: {
            "information": {
                "title": "benchmark root",
                "versions": [TAXII_MEDIA_TYPE],
                # Envelopes of 1,000 objects are ~0.8 MB; this is headroom over the stock 9.7 MB.
                "max_content_length": 100 * 1024 * 1024,
            },
            "status": [],
            "collections": [
                {
                    "id": collection_id,
                    "title": "benchmark collection",
                    "can_read": True,
                    "can_write": True,
                    "media_types": ["application/stix+json;version=2.1"],
                    "objects": [],
                    "manifest": [],
                }
            ],
        },
    }
    data_path = directory / "medallion-data.json"
    data_path.write_text(json.dumps(data))
    config = {
        "backend": {
            "module": "medallion.backends.memory_backend",
            "module_class": "MemoryBackend",
            "filename": str(data_path),
        },
        "users": {USER[0]: USER[1]},
        "taxii": {"max_page_size": 1000},
    }
    config_path = directory / "medallion-config.json"
    config_path.write_text(json.dumps(config))
    return config_path, collection_id


def run(
    payloads: Sequence[bytes],
    ingest_cap_s: float = 120.0,
    page_queries: int = 20,
    page_timeout_s: float = 30.0,
    page_cap_s: float = 60.0,
    measure_pages: bool = True,
    seed: int = 1,
) -> dict[str, Any]:
    """Ingest `payloads` into a fresh medallion, then time filtered pages; returns the figures."""
    with tempfile.TemporaryDirectory(prefix="kizuna-bench-medallion-") as tmp:
        port = free_loopback_port()
        config_path, collection_id = write_config(Path(tmp), port)
        base = f"http://127.0.0.1:{port}"
        server = ServerProcess(
            [str(VENV_BIN / "medallion"), "--host", "127.0.0.1", "--port", str(port), str(config_path)],
            ready_url=f"{base}/taxii2/",
            auth=USER,
            headers={"Accept": TAXII_MEDIA_TYPE},
            log_path=Path(tmp) / "medallion.log",
        )
        server.start()
        try:
            objects_url = f"{base}/{API_ROOT}/collections/{collection_id}/objects/"
            marks: list[str] = []
            with httpx.Client(auth=USER, timeout=max(ingest_cap_s, 60.0)) as client:
                ingest = post_envelopes(client, objects_url, payloads, marks, time_cap_s=ingest_cap_s)
                result: dict[str, Any] = {"ingest": ingest, "stored": ingest["succeeded"]}
                if measure_pages:
                    result["page"] = page_latencies(
                        client,
                        objects_url,
                        marks,
                        queries=page_queries,
                        seed=seed,
                        request_timeout_s=page_timeout_s,
                        time_cap_s=page_cap_s,
                        warmup=0,
                    )
        finally:
            server.stop()
        result["peak_rss_mb"] = server.peak_rss_mb
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=positive_int, default=10_000, help="objects to POST (envelopes of 1,000)")
    parser.add_argument(
        "--ingest-cap", type=float, default=120.0, help="stop POSTing after this many seconds"
    )
    parser.add_argument("--page-queries", type=positive_int, default=20, help="filtered page requests timed")
    parser.add_argument("--page-timeout", type=float, default=30.0, help="give up on one page after N s")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    result = run(
        envelopes(args.count),
        ingest_cap_s=args.ingest_cap,
        page_queries=args.page_queries,
        page_timeout_s=args.page_timeout,
        page_cap_s=max(args.page_timeout * 2, 60.0),
    )
    if args.json:
        print(orjson.dumps(result).decode())
    else:
        ingest, page = result["ingest"], result["page"]
        print(
            f"medallion ingest: {ingest['objects_per_s']:,} objects/s "
            f"({ingest['objects']:,} in {ingest['seconds']} s)"
        )
        if "timeout_s" in page:
            print(f"medallion page: timeout >{page['timeout_s']:.0f} s")
        else:
            print(f"medallion page: p50 {page['p50_ms']} ms, p99 {page['p99_ms']} ms over {page['queries']}")
        print(f"medallion peak RSS: {result['peak_rss_mb']} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
