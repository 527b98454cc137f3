"""What Kizuna's HTTP protocol and TLS cost per request, beside uvicorn's stock httptools protocol.

One trivial ASGI app (a fixed 200 answer, so only the transport is measured) is served by uvicorn in
a child process, in four configurations, and one keep-alive client sends --requests GET requests
one after another:

- stock: uvicorn's httptools protocol, plain HTTP (the floor);
- kizuna: KizunaHttpProtocol (head bounds, TLS extension), plain HTTP;
- kizuna-tls: the same over HTTPS;
- kizuna-mtls: the same with a client certificate required (the ASGI tls extension carries it).

Runs are interleaved across configurations. Figures are medians over --runs of requests per second
and the server's peak RSS; --json prints one JSON line.

    python -m bench.bench_transport
    python -m bench.bench_transport --requests 5000 --runs 5 --json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import ssl
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import trustme

from bench.common import free_loopback_port, peak_rss_mb, positive_int

CONFIGS = ("stock", "kizuna", "kizuna-tls", "kizuna-mtls")


async def fixed_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    tls = scope.get("extensions", {}).get("tls")
    body = b"cert" if tls and tls.get("client_cert_chain") else b"ok"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


def serve(config: str, port: int, files: dict[str, str]) -> None:
    import uvicorn

    from kizuna.taxii.transport import KizunaHttpProtocol

    options: dict[str, Any] = {}
    if config in ("kizuna-tls", "kizuna-mtls"):
        options = {"ssl_certfile": files["server_cert"], "ssl_keyfile": files["server_key"]}
    if config == "kizuna-mtls":
        options |= {"ssl_ca_certs": files["ca"], "ssl_cert_reqs": ssl.CERT_REQUIRED}
    protocol: Any = "httptools" if config == "stock" else KizunaHttpProtocol
    uvicorn.run(fixed_app, host="127.0.0.1", port=port, http=protocol, log_level="warning", access_log=False,
                **options)


def wait_ready(client: httpx.Client, url: str, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            client.get(url)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # waiting for the child to listen, bounded by the deadline


def measure(config: str, requests: int, files: dict[str, str]) -> tuple[float, float]:
    port = free_loopback_port()
    child = multiprocessing.get_context("spawn").Process(target=serve, args=(config, port, files), daemon=True)
    child.start()
    scheme = "https" if config != "stock" and config != "kizuna" else "http"
    verify: Any = True
    if scheme == "https":
        verify = ssl.create_default_context(cafile=files["ca"])
        if config == "kizuna-mtls":
            verify.load_cert_chain(files["client_cert"], files["client_key"])
    url = f"{scheme}://127.0.0.1:{port}/"
    try:
        with httpx.Client(verify=verify, timeout=30) as client:
            wait_ready(client, url)
            expected = b"cert" if config == "kizuna-mtls" else b"ok"
            started = time.perf_counter()
            for _ in range(requests):
                response = client.get(url)
                assert response.content == expected, response.content
            elapsed = time.perf_counter() - started
        assert child.pid is not None
        return requests / elapsed, peak_rss_mb(child.pid)
    finally:
        child.terminate()
        child.join(10)


def certificates(base: Path) -> dict[str, str]:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    client = ca.issue_cert("client.example")
    names = ("ca", "server_cert", "server_key", "client_cert", "client_key")
    files = {name: str(base / f"{name}.pem") for name in names}
    ca.cert_pem.write_to_path(files["ca"])
    server.cert_chain_pems[0].write_to_path(files["server_cert"])
    server.private_key_pem.write_to_path(files["server_key"])
    client.cert_chain_pems[0].write_to_path(files["client_cert"])
    client.private_key_pem.write_to_path(files["client_key"])
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=positive_int, default=2000,
                        help="Requests per run (keep-alive, sequential).")
    parser.add_argument("--runs", type=positive_int, default=3, help="Runs per configuration; medians are reported.")
    parser.add_argument("--json", action="store_true", help="Print one JSON line.")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = certificates(Path(tmp))
        # Interleaved, so a change in the machine's load during the run touches every configuration alike.
        by_config: dict[str, list[tuple[float, float]]] = {config: [] for config in CONFIGS}
        for _ in range(args.runs):
            for config in CONFIGS:
                by_config[config].append(measure(config, args.requests, files))
        for config, samples in by_config.items():
            results[config] = {
                "requests_per_s": round(statistics.median(s[0] for s in samples), 1),
                "server_peak_rss_mb": round(statistics.median(s[1] for s in samples), 1),
            }
    floor = results["stock"]["requests_per_s"]
    for config in CONFIGS:
        results[config]["vs_stock"] = round(results[config]["requests_per_s"] / floor, 3)
    if args.json:
        print(json.dumps({"bench": "transport", "requests": args.requests, "runs": args.runs, "results": results}))
        return
    for config in CONFIGS:
        row = results[config]
        print(f"{config:<12} {row['requests_per_s']:>9.1f} req/s  x{row['vs_stock']:.3f} of stock  "
              f"server peak RSS {row['server_peak_rss_mb']:.1f} MB")


if __name__ == "__main__":
    main()
