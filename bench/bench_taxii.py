"""Storage and TAXII benchmark of the Kizuna node, side by side in one run.

Targets, all fed the same seeded objects in envelopes of 1,000:

- floor: bare orjson parse + SQLite executemany with TAXII indexes (bench/sqlite_floor.py), no HTTP;
- floor-postgresql: the same work on PostgreSQL, one binary COPY per envelope (bench/pg_floor.py), no HTTP;
- medallion: the OASIS reference TAXII 2.1 server, memory backend (bench/medallion_target.py), to 10k objects;
- kizuna-sqlite / kizuna-postgresql: `kizuna serve` as a subprocess, set up through the `kizuna` command.

Per run and target: ingest objects/s through POST .../objects/, filtered-page latency p50/p99 at each size,
full read-out objects/s, `kizuna import` of a generated bundle file (objects/s and peak RSS), and the server's
peak RSS. Figures are medians over --runs; --json prints them as one JSON line (the table goes to stderr).

    python -m bench.bench_taxii                     # quick: 10k/100k, 100 MB import, 3 runs
    python -m bench.bench_taxii --full --import-gb 1  # the issue's sizes: to 1M objects, 1 GB import
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import medallion_target, pg_floor, sqlite_floor
from bench.common import (
    TAXII_MEDIA_TYPE,
    VENV_BIN,
    ServerProcess,
    free_loopback_port,
    median,
    names_in,
    own_peak_rss_mb,
    page_latencies,
    positive_int,
    post_envelopes,
    read_all,
    run_measured,
    store_url,
)
from bench.gen_stix import MARKINGS, TLP_CLEAR, envelopes, write_bundle

PER_ENVELOPE = 1000
TARGETS = ("floor", "floor-postgresql", "medallion", "kizuna-sqlite", "kizuna-postgresql")
#: The floor each Kizuna target is held to: its own engine's (the SQLite floor when that one did not run).
FLOOR_OF = {"kizuna-sqlite": "floor", "kizuna-postgresql": "floor-postgresql"}
GOALS = {
    "ingest_vs_floor": 0.60,
    "ingest_objects_per_s": 25_000,
    "page_p99_ms": 20.0,
    "readout_objects_per_s": 100_000,
    "import_peak_rss_mb": 300.0,
}


def node_placed_definitions(client: Any, objects_url: str) -> int:
    """How many TLP definitions the node placed in the collection itself.

    Ingest stores the OASIS marking definitions (and the TLP 2.0 extension-definition) that objects
    refer to, so clients can resolve the references; they are stored versions like any other.
    """
    from kizuna.policy.tlp import TLP2_EXTENSION_ID, TLP2_IDS

    placed = 0
    for object_id in (TLP2_EXTENSION_ID, *TLP2_IDS.values()):
        if client.get(f"{objects_url}{object_id}/").status_code == 200:
            placed += 1
    return placed


def kizuna_command() -> list[str]:
    installed = VENV_BIN / "kizuna"
    if installed.exists():
        return [str(installed)]
    return [sys.executable, "-c", "import sys; from kizuna.cli import main; sys.exit(main())"]


def kizuna_unavailable_reason() -> str | None:
    """None when the `kizuna` command answers; otherwise why the kizuna targets cannot run."""
    try:
        completed = subprocess.run([*kizuna_command(), "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    if completed.returncode != 0:
        return (completed.stderr or completed.stdout).strip().splitlines()[-1:][0] if completed.stderr else "failed"
    if "serve" not in completed.stdout:
        return "`kizuna --help` lists no serve command"
    return None


class KizunaNode:
    """One Kizuna data directory driven only through the public `kizuna` command."""

    def __init__(self, data_dir: Path, store_url: str) -> None:
        self.data_dir = data_dir
        self.store_url = store_url
        self.env = {**os.environ, "KIZUNA_DATA": str(data_dir)}

    def cli(self, *args: str, timeout_s: float = 300) -> dict[str, Any]:
        command = [*kizuna_command(), "--data", str(self.data_dir), *args, "--json"]
        completed = subprocess.run(command, capture_output=True, text=True, env=self.env, timeout=timeout_s)
        if completed.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} -> exit {completed.returncode}: {completed.stderr[-1500:]}")
        result: dict[str, Any] = orjson.loads(completed.stdout.strip().splitlines()[-1])
        return result

    def create(self) -> str:
        """Initialise the node and one collection; returns the collection id."""
        self.cli("init", "--store", self.store_url, "--org-name", "Bench Node")
        collection: dict[str, Any] = self.cli("collections", "create", "--title", "bench")
        return str(collection["id"])

    def token(self, collection_id: str) -> str:
        self.cli("orgs", "create", "Bench Reader")
        created = self.cli(
            "tokens", "create", "--org", "Bench Reader", "--read", collection_id, "--write", collection_id
        )
        return str(created["token"])

    def import_command(self, bundle: Path, collection_id: str) -> list[str]:
        return [
            *kizuna_command(),
            "--data",
            str(self.data_dir),
            "import",
            str(bundle),
            "--collection",
            collection_id,
            "--json",
        ]

    def server(self, port: int, token: str, workers: int | None) -> ServerProcess:
        command = [*kizuna_command(), "--data", str(self.data_dir), "serve", "--host", "127.0.0.1"]
        command += ["--port", str(port)]
        if workers:
            command += ["--workers", str(workers)]
        return ServerProcess(
            command,
            ready_url=f"http://127.0.0.1:{port}/taxii2/",
            env=self.env,
            headers={"Accept": TAXII_MEDIA_TYPE, "Authorization": f"Bearer {token}"},
            log_path=self.data_dir.parent / f"serve-{port}.log",
        )


def run_kizuna(
    kind: str,
    payloads: Sequence[bytes],
    sizes: Sequence[int],
    args: argparse.Namespace,
    bundle: Path | None,
    bundle_objects: int,
    run_index: int,
) -> dict[str, Any]:
    result: dict[str, Any] = {"stages": {}}
    with tempfile.TemporaryDirectory(prefix=f"kizuna-bench-{kind}-") as tmp:
        with store_url(kind, Path(tmp), args.pg_url) as url:
            node = KizunaNode(Path(tmp) / "node", url)
            collection_id = node.create()
            token = node.token(collection_id)
            port = free_loopback_port()
            server = node.server(port, token, args.workers)
            server.start()
            try:
                base = f"http://127.0.0.1:{port}/main/"
                objects_url = f"{base}collections/{collection_id}/objects/"
                marks: list[str] = []
                headers = {"Authorization": f"Bearer {token}"}
                with httpx.Client(headers=headers, timeout=120.0) as client:
                    # A new node may already hold objects of its own (its identity, marking definitions).
                    baseline = read_all(client, objects_url, args.readout_limit, time_cap_s=60.0)["objects"]
                    done = 0
                    ingested = 0
                    ingest_seconds = 0.0
                    for size in sizes:
                        stage = post_envelopes(
                            client,
                            objects_url,
                            payloads[done // PER_ENVELOPE : size // PER_ENVELOPE],
                            marks,
                            status_url_prefix=f"{base}status/",
                        )
                        done = size
                        ingested += stage["objects"]
                        ingest_seconds += stage["seconds"]
                        stage["page"] = page_latencies(
                            client,
                            objects_url,
                            marks,
                            queries=args.page_queries,
                            seed=run_index * 1000 + size,
                            request_timeout_s=30.0,
                            time_cap_s=120.0,
                        )
                        result["stages"][str(size)] = stage
                        result["failed"] = result.get("failed", 0) + stage["failed"]
                    result["ingest"] = {
                        "objects": ingested,
                        "seconds": round(ingest_seconds, 3),
                        "objects_per_s": round(ingested / ingest_seconds),
                    }
                    result["readout"] = read_all(client, objects_url, args.readout_limit, time_cap_s=600.0)
                    # Every stored version must come back; a short read-out is a defect, not a speed.
                    if args.markings == "clear":
                        result["readout"]["expected"] = (
                            baseline + ingested - result.get("failed", 0)
                            + node_placed_definitions(client, objects_url)
                        )
            finally:
                server.stop()
            result["peak_rss_mb"] = server.peak_rss_mb
        if bundle is not None and run_index < args.import_runs:
            with store_url(kind, Path(tmp) / "import", args.pg_url) as url:
                (Path(tmp) / "import").mkdir(exist_ok=True)
                node = KizunaNode(Path(tmp) / "import" / "node", url)
                collection_id = node.create()
                code, seconds, rss, out, err = run_measured(
                    node.import_command(bundle, collection_id), env=node.env, timeout_s=3600
                )
                reported: dict[str, Any] = {}
                with contextlib.suppress(orjson.JSONDecodeError, IndexError):
                    reported = orjson.loads(out.strip().splitlines()[-1])
                if code != 0 and not reported:
                    raise RuntimeError(f"kizuna import -> exit {code}: {err[-1500:]}")
                # The node's own report counts what it stored; rejected objects stay visible as `failed`.
                stored = int(reported.get("stored", bundle_objects))
                result["import"] = {
                    "objects": bundle_objects,
                    "stored": stored,
                    "failed": int(reported.get("failed", 0)),
                    "seconds": round(seconds, 3),
                    "objects_per_s": round(bundle_objects / seconds),
                    "peak_rss_mb": rss,
                    "bundle_mb": round(bundle.stat().st_size / 2**20, 1),
                }
    return result


def aggregate(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Median of every numeric leaf across runs; other leaves come from the first run that has them."""
    merged: dict[str, Any] = {}
    keys: list[str] = []
    for run in runs:
        keys += [key for key in run if key not in keys]
    for key in keys:
        values = [run[key] for run in runs if key in run]
        if all(isinstance(value, dict) for value in values):
            merged[key] = aggregate(values)
        elif all(isinstance(value, int | float) and not isinstance(value, bool) for value in values):
            merged[key] = median(values)
        else:
            merged[key] = values[0]
    return merged


def fmt_rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def fmt_page(page: dict[str, Any] | None) -> str:
    if not page:
        return "—"
    if "timeout_s" in page:
        return f"timeout >{page['timeout_s']:.0f} s"
    return f"{page['p50_ms']:.1f} / {page['p99_ms']:.1f}"


def render_table(summary: dict[str, Any], sizes: Sequence[int]) -> str:
    size_labels = [f"{size // 1000}k" if size < 1_000_000 else f"{size // 1_000_000}M" for size in sizes]
    header = (
        ["target", "ingest obj/s", "× floor"]
        + [f"page p50/p99 ms @{label}" for label in size_labels]
        + ["read-out obj/s", "import obj/s", "import peak RSS MB", "server peak RSS MB"]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    floor = summary.get("floor", {}).get("objects_per_s")
    for target in TARGETS:
        data = summary.get(target)
        if data is None:
            continue
        if "error" in data:
            lines.append(f"| {target} | {data['error']} |" + " |" * (len(header) - 2))
            continue
        if target.startswith("floor"):
            row = [target, fmt_rate(data["objects_per_s"]), "1.00"] + ["—"] * len(sizes)
            row += ["—", "—", "—", "—"]
        elif target == "medallion":
            ingest = data["ingest"]
            row = [
                f"medallion ({ingest['objects']:,.0f} obj)",
                fmt_rate(ingest["objects_per_s"]),
                f"{ingest['objects_per_s'] / floor:.2f}" if floor else "—",
            ]
            row += [fmt_page(data.get("page")) if size == sizes[0] else "—" for size in sizes]
            row += ["—", "—", "—", str(data.get("peak_rss_mb"))]
        else:
            ingest = data["ingest"]
            own_floor = summary.get(data.get("floor", "floor"), {}).get("objects_per_s")
            row = [
                target,
                fmt_rate(ingest["objects_per_s"]),
                f"{data.get('ingest_vs_floor_paired', ingest['objects_per_s'] / own_floor):.2f}" if own_floor else "—",
            ]
            row += [fmt_page(data["stages"].get(str(size), {}).get("page")) for size in sizes]
            imported = data.get("import", {})
            readout = data["readout"]
            read_text = fmt_rate(readout["objects_per_s"])
            if readout["objects"] != readout.get("expected", readout["objects"]):
                read_text += f" ({readout['objects']:,.0f} returned, {readout['expected']:,.0f} stored!)"
            row += [
                read_text,
                fmt_rate(imported.get("objects_per_s")),
                str(imported.get("peak_rss_mb", "—")),
                str(data.get("peak_rss_mb")),
            ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def ratios_and_goals(summary: dict[str, Any], sizes: Sequence[int]) -> dict[str, Any]:
    medallion = summary.get("medallion", {})
    out: dict[str, Any] = {}
    for target in ("kizuna-sqlite", "kizuna-postgresql"):
        data = summary.get(target)
        if not data or "error" in data:
            continue
        rate = data["ingest"]["objects_per_s"]
        entry: dict[str, Any] = {}
        floor = summary.get(data.get("floor", "floor"), {}).get("objects_per_s")
        if floor:
            entry["floor"] = data.get("floor", "floor")
            entry["ingest_vs_floor"] = round(rate / floor, 2)
        if data.get("ingest_vs_floor_paired") is not None:
            entry["ingest_vs_floor_paired"] = data["ingest_vs_floor_paired"]
        first = data["stages"].get(str(sizes[0]), {})
        if medallion.get("ingest", {}).get("objects_per_s") and first.get("objects_per_s"):
            # Same first 10k objects on both servers, so this is the like-for-like ingest ratio.
            entry["ingest_vs_medallion_first_stage"] = round(
                first["objects_per_s"] / medallion["ingest"]["objects_per_s"], 1
            )
        med_page = medallion.get("page", {})
        kiz_page = first.get("page", {})
        if kiz_page.get("p50_ms"):
            if med_page.get("p50_ms"):
                entry["page_p50_medallion_over_kizuna"] = round(med_page["p50_ms"] / kiz_page["p50_ms"], 1)
            elif med_page.get("timeout_s"):
                entry["page_p50_medallion_over_kizuna"] = f">{med_page['timeout_s'] * 1000 / kiz_page['p50_ms']:,.0f}"
        goals = {
            "ingest >= 60% of floor (paired per run)": (
                entry.get("ingest_vs_floor_paired", entry.get("ingest_vs_floor", 0)) >= GOALS["ingest_vs_floor"]
            ),
            "ingest >= 25,000 obj/s": rate >= GOALS["ingest_objects_per_s"],
            "page p99 <= 20 ms at every size": all(
                (data["stages"].get(str(size), {}).get("page", {}).get("p99_ms") or 1e9) <= GOALS["page_p99_ms"]
                for size in sizes
            ),
            "read-out >= 100,000 obj/s, complete": data["readout"]["objects_per_s"] >= GOALS["readout_objects_per_s"]
            and data["readout"]["objects"] == data["readout"].get("expected", data["readout"]["objects"]),
        }
        if "import" in data:
            goals["import peak RSS <= 300 MB"] = data["import"]["peak_rss_mb"] <= GOALS["import_peak_rss_mb"]
        entry["goals"] = goals
        out[target] = entry
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=positive_int, default=3, help="repeat everything N times; report medians")
    parser.add_argument("--sizes", default="10000,100000", help="collection sizes for page latency (ascending)")
    parser.add_argument("--full", action="store_true", help="sizes 10k,100k,1M (the issue's figures)")
    parser.add_argument("--import-mb", type=float, default=100.0, help="size of the bundle for `kizuna import`")
    parser.add_argument("--import-gb", type=float, help="same in GiB (overrides --import-mb)")
    parser.add_argument("--no-import", action="store_true", help="skip the import measurement")
    parser.add_argument(
        "--import-runs", type=positive_int, default=1,
        help="measure the import in the first N runs (it is the slow part)"
    )
    parser.add_argument("--targets", type=names_in(TARGETS), default=list(TARGETS),
                        help=f"subset of {','.join(TARGETS)}")
    parser.add_argument("--medallion-count", type=positive_int, default=10_000, help="objects POSTed to medallion")
    parser.add_argument("--medallion-ingest-cap", type=float, default=120.0, help="seconds")
    parser.add_argument(
        "--medallion-page-timeout",
        type=float,
        default=30.0,
        help="seconds before one medallion page is reported as a timeout (measured in run 1 only)",
    )
    parser.add_argument("--page-queries", type=positive_int, default=200, help="filtered pages timed per size")
    parser.add_argument(
        "--readout-limit", type=positive_int, default=10000,
        help="page size for the full read-out (default: the server's largest page, as a bulk client asks)",
    )
    parser.add_argument("--workers", type=positive_int, help="passed to `kizuna serve --workers`")
    parser.add_argument(
        "--pg-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="admin connection; a fresh kizuna_bench_* database is created and dropped",
    )
    parser.add_argument(
        "--markings",
        default="clear",
        choices=("clear", "mixed"),
        help="TLP of the input: all CLEAR (every object readable) or a CLEAR/GREEN/AMBER mix",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line on stdout")
    args = parser.parse_args(argv)
    args.sizes = [10_000, 100_000, 1_000_000] if args.full else sorted(int(s) for s in args.sizes.split(","))
    if args.import_gb:
        args.import_mb = args.import_gb * 1024
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = sys.stderr
    started = time.perf_counter()
    print(f"generating {args.sizes[-1]:,} objects ...", file=log, flush=True)
    # Kizuna enforces markings on every read: with the default policy a plain token sees TLP:CLEAR only, so
    # the default input is all CLEAR and every stored object must come back; --markings mixed keeps the
    # realistic CLEAR/GREEN/AMBER mix and then counts what the policy lets through.
    markings = (TLP_CLEAR,) if args.markings == "clear" else MARKINGS
    payloads = envelopes(args.sizes[-1], PER_ENVELOPE, markings=markings)
    kizuna_targets = [target for target in args.targets if target.startswith("kizuna-")]
    unavailable = kizuna_unavailable_reason() if kizuna_targets else None
    work = Path(tempfile.mkdtemp(prefix="kizuna-bench-"))
    runs: dict[str, list[dict[str, Any]]] = {target: [] for target in args.targets}
    errors: dict[str, str] = {}
    try:
        bundle: Path | None = None
        bundle_objects = 0
        if kizuna_targets and not unavailable and not args.no_import:
            bundle = work / "import-bundle.json"
            print(f"writing a {args.import_mb:,.0f} MB bundle ...", file=log, flush=True)
            bundle_objects = write_bundle(bundle, int(args.import_mb * 2**20), markings=markings)
        for run_index in range(args.runs):
            for target in args.targets:
                print(f"run {run_index + 1}/{args.runs}: {target} ...", file=log, flush=True)
                if target == "floor":
                    with tempfile.TemporaryDirectory(prefix="kizuna-floor-") as tmp:
                        runs[target].append(sqlite_floor.ingest(Path(tmp) / "floor.db", payloads))
                elif target == "floor-postgresql":
                    runs[target].append(pg_floor.run(args.pg_url, payloads))
                elif target == "medallion":
                    runs[target].append(
                        medallion_target.run(
                            payloads[: args.medallion_count // PER_ENVELOPE],
                            ingest_cap_s=args.medallion_ingest_cap,
                            page_queries=20,
                            page_timeout_s=args.medallion_page_timeout,
                            page_cap_s=max(60.0, args.medallion_page_timeout * 2),
                            measure_pages=run_index == 0,
                        )
                    )
                elif unavailable:
                    errors[target] = f"not run: {unavailable}"
                elif target in errors:
                    continue
                else:
                    try:
                        runs[target].append(
                            run_kizuna(
                                target.removeprefix("kizuna-"),
                                payloads,
                                args.sizes,
                                args,
                                bundle,
                                bundle_objects,
                                run_index,
                            )
                        )
                    except Exception as error:  # noqa: BLE001 - one broken target must not sink the comparison
                        errors[target] = f"failed: {str(error)[:300]}"
                        print(f"  {target} failed: {error}", file=log, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary: dict[str, Any] = {}
    for target in args.targets:
        if runs[target]:
            summary[target] = aggregate(runs[target])
            summary[target]["runs_objects_per_s"] = [
                run.get("objects_per_s") or run.get("ingest", {}).get("objects_per_s") for run in runs[target]
            ]
        elif target in errors:
            summary[target] = {"error": errors[target]}
    # The machine is noisy: a ratio taken within each run, then the median, cancels load that hits both.
    for target, own_floor in FLOOR_OF.items():
        floor = own_floor if runs.get(own_floor) else "floor"
        if target in summary and "error" not in summary[target] and runs.get(floor):
            paired = [
                run["ingest"]["objects_per_s"] / floor_run["objects_per_s"]
                for run, floor_run in zip(runs[target], runs[floor], strict=False)
            ]
            summary[target]["floor"] = floor
            summary[target]["ingest_vs_floor_paired"] = round(median(paired) or 0, 2)
    comparison = ratios_and_goals(summary, args.sizes)
    table = render_table(summary, args.sizes)
    report = {
        "config": {
            "markings": args.markings,
            "runs": args.runs,
            "sizes": args.sizes,
            "envelope": PER_ENVELOPE,
            "import_mb": None if args.no_import else args.import_mb,
            "medallion_count": args.medallion_count,
            "page_queries": args.page_queries,
            "workers": args.workers,
            "cpus": os.cpu_count(),
        },
        "results": summary,
        "comparison": comparison,
        "seconds": round(time.perf_counter() - started, 1),
        "bench_process_peak_rss_mb": own_peak_rss_mb(),
    }
    out = log if args.json else sys.stdout
    print(table, file=out)
    for target, entry in comparison.items():
        print(
            f"{target}: " + ", ".join(f"{key} {value}" for key, value in entry.items() if key != "goals"),
            file=out,
        )
        for goal, met in entry["goals"].items():
            print(f"  [{'met' if met else 'NOT met'}] {goal}", file=out)
    print(f"total {report['seconds']} s", file=out)
    if args.json:
        print(orjson.dumps(report).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
