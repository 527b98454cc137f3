"""Server time of the console's operator pages on a node with a long audit log, on SQLite.

A node's audit log grows with every page served (each is an ``egress`` record), so the Audit page
must not cost more as the log grows: it reads one page of records by sequence number from the head.
The node holds ``--records`` audit records (written in batches through the store, as any command
writes them), ``--partners`` partner entries and ``--tokens`` tokens; a real `kizuna serve` answers an
operator signed in through the console's form. Each page is fetched ``--runs`` times over one
keep-alive connection; the figure is the median wall time. Pages: Audit (the head page and a page in
the middle of the log), Partners & sync, Tokens, Agreements. The anchor, in the same run: the TAXII
collections endpoint for the same token (a page that reads almost nothing). Verifying the whole chain
(``/console/audit?verify=1``) reads every record and is timed once, beside `kizuna audit verify`.

    .venv/bin/python -m bench.bench_console_operators [--records 200000] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_console import kizuna, timed  # noqa: E402
from common import ServerProcess, free_loopback_port  # noqa: E402

from bench.common import positive_int
from kizuna.core.audit import seal  # noqa: E402
from kizuna.core.node import Node  # noqa: E402
from kizuna.core.operators import set_operator_right  # noqa: E402
from kizuna.federation.admin import add_partner  # noqa: E402
from kizuna.stix.timestamps import now_micros  # noqa: E402
from kizuna.store.base import AuditEntry  # noqa: E402

TAXII = "application/taxii+json;version=2.1"
BATCH = 10_000


def prepare(data: Path, records: int, partners: int, tokens: int) -> str:
    kizuna(data, "init", "--org-name", "NCSC UK", "--country", "GBR")
    kizuna(data, "collections", "create", "--title", "Bench", "--alias", "bench")
    kizuna(data, "orgs", "create", "JPCERT/CC", "--country", "JPN")
    node = Node.open(data)
    try:
        written = 0
        while written < records:
            size = min(BATCH, records - written)
            body = orjson.dumps({"endpoint": "objects", "collection": "bench", "n": 50}).decode()
            node.store.append_audit([AuditEntry(now_micros(), "egress", "admin", body)] * size, seal)
            written += size
        for n in range(partners):
            add_partner(node, f"partner-{n:03d}", f"http://127.0.0.1:9/p{n}/", ("bench=bench:push",))
        for n in range(tokens):
            node.create_token("JPCERT/CC", ["bench"], (), f"bench token {n}")
        token_id, secret = node.create_token("NCSC UK", ["bench"], ["bench"], "operator")
        set_operator_right(node, token_id, True)
        node.set_agreement("jp", "JPCERT/CC")
    finally:
        node.close()
    return secret


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=positive_int, default=200_000, help="audit records in the log")
    parser.add_argument("--partners", type=positive_int, default=20, help="partner entries")
    parser.add_argument("--tokens", type=positive_int, default=200, help="tokens besides the operator's")
    parser.add_argument("--runs", type=positive_int, default=5, help="requests per page; the median is reported")
    parser.add_argument("--json", action="store_true", help="only the JSON line on stdout")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kizuna-bench-operators-") as tmp:
        data = Path(tmp) / "node"
        token = prepare(data, args.records, args.partners, args.tokens)
        port = free_loopback_port()
        command = [sys.executable, "-m", "kizuna", "--data", str(data), "serve", "--port", str(port), "--no-sync"]
        with ServerProcess(command, f"http://127.0.0.1:{port}/taxii2/") as server, \
                httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            form = client.get("/console/sign-in")
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert csrf, "no sign-in form"
            client.post("/console/sign-in", data={"csrf": csrf.group(1), "token": token, "next": "/console/"})

            def page(url: str, runs: int = args.runs, headers: dict[str, str] | None = None) -> float:
                """The median ms of ``url`` (bench_console's ``timed`` measures a dict of servers: here one)."""
                return timed({"kizuna": client}, url, runs, headers)["kizuna"]

            pages = {
                "audit_head_ms": page("/console/audit"),
                "audit_middle_ms": page(f"/console/audit?before={args.records // 2}"),
                "partners_ms": page("/console/partners"),
                "tokens_ms": page("/console/tokens"),
                "agreements_ms": page("/console/agreements"),
                "taxii_collections_anchor_ms": page("/main/collections/",
                                                    headers={"Accept": TAXII, "Authorization": f"Bearer {token}"}),
                "audit_verify_ms": page("/console/audit?verify=1", runs=1),
            }
            rss = server.sample_peak_rss()
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "kizuna", "--data", str(data), "audit", "verify"], check=True,
                       capture_output=True)
        cli_verify_ms = round((time.perf_counter() - started) * 1000, 1)
    result = {"bench": "console_operators", "backend": "sqlite", "records": args.records,
              "partners": args.partners, "tokens": args.tokens + 1, "runs": args.runs, **pages,
              "cli_audit_verify_ms": cli_verify_ms, "server_peak_rss_mb": rss}
    if not args.json:
        print(json.dumps(result, indent=2), file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
