"""Shared helpers for the TAXII node benchmark: ports, processes, peak memory, statistics, timestamps."""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import random
import re
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1"
TAXII_HEADERS = {"Accept": TAXII_MEDIA_TYPE, "Content-Type": TAXII_MEDIA_TYPE}
REPO_ROOT = Path(__file__).resolve().parent.parent
#: The bin directory of the environment running the benchmark (its kizuna and medallion commands).
VENV_BIN = Path(sys.executable).parent


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def taxii_timestamp(moment: datetime | None = None) -> str:
    """Microsecond precision so an `added_after` taken between two envelopes separates them."""
    moment = moment or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile: with 200 samples p99 is the second slowest, never an interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _status_kb(pid: int, field: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def process_counters(pid: int) -> tuple[float, int]:
    """User + system CPU seconds and minor page faults of a process and its descendants so far, each read
    from one /proc/<pid>/stat (fields 14, 15 and 10)."""
    seconds, faults = 0, 0
    for each in (pid, *descendant_pids(pid)):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        seconds += int(fields[11]) + int(fields[12])
        faults += int(fields[7])
    return seconds / os.sysconf("SC_CLK_TCK"), faults


def descendant_pids(pid: int) -> list[int]:
    """Children found through /proc/<pid>/task/*/children, recursively (uvicorn workers are grandchildren)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        task_dir = Path(f"/proc/{current}/task")
        if not task_dir.exists():
            continue
        for task in task_dir.iterdir():
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in children:
                child_pid = int(child)
                if child_pid not in found:
                    found.append(child_pid)
                    pending.append(child_pid)
    return found


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process plus its descendants.

    Summing per-process peaks overstates a multi-worker server slightly (peaks need not coincide), which errs
    on the side of reporting more memory, not less.
    """
    total_kb = _status_kb(pid, "VmHWM") + sum(_status_kb(child, "VmHWM") for child in descendant_pids(pid))
    return round(total_kb / 1024, 1)


def own_peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_measured(
    command: Sequence[str], env: dict[str, str] | None = None, timeout_s: float | None = None,
    parts: dict[str, float] | None = None,
) -> tuple[int, float, float, str, str]:
    """Run a command to completion; return (exit code, wall seconds, peak RSS MB, stdout, stderr).

    The peak is the child's VmHWM, polled from /proc while it runs: it belongs to the command's own
    address space after exec. (wait4's ru_maxrss would also count the benchmark's memory, which the
    child shares between fork and exec.) With ``parts``, the largest RssAnon (the process's own memory)
    and RssFile (pages of mapped files, such as SQLite's memory map of its database, which the kernel
    may drop) seen at the polls are put there in MB as ``anon_mb`` and ``file_mb``.
    """
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    deadline = None if timeout_s is None else started + timeout_s
    # Drain pipes in the background so a chatty child cannot block on a full pipe.
    captured: dict[str, str] = {}

    def drain(name: str, stream: Any) -> None:
        captured[name] = stream.read()

    readers = [
        threading.Thread(target=drain, args=(name, stream), daemon=True)
        for name, stream in (("out", process.stdout), ("err", process.stderr))
    ]
    for reader in readers:
        reader.start()
    peak_kb = 0
    seen_kb = {"RssAnon": 0, "RssFile": 0}
    status_path = f"/proc/{process.pid}/status"
    while True:
        try:
            with open(status_path) as status_file:
                for line in status_file:
                    if line.startswith("VmHWM:"):
                        peak_kb = max(peak_kb, int(line.split()[1]))
                        if parts is None:
                            break
                    elif parts is not None and line[:7] in seen_kb:
                        seen_kb[line[:7]] = max(seen_kb[line[:7]], int(line.split()[1]))
        except OSError:
            pass
        waited_pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if waited_pid:
            break
        if deadline is not None and time.perf_counter() > deadline:
            process.kill()
            waited_pid, status, usage = os.wait4(process.pid, 0)
            break
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join(timeout=5)
    if parts is not None:
        parts["anon_mb"] = round(seen_kb["RssAnon"] / 1024, 1)
        parts["file_mb"] = round(seen_kb["RssFile"] / 1024, 1)
    return (
        process.returncode,
        elapsed,
        round((peak_kb or usage.ru_maxrss) / 1024, 1),
        captured.get("out", ""),
        captured.get("err", ""),
    )


class ServerProcess:
    """A server started as a real subprocess on loopback; memory is sampled before it is stopped."""

    def __init__(
        self,
        command: Sequence[str],
        ready_url: str,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.command = list(command)
        self.ready_url = ready_url
        self.env = env
        self.log_path = log_path
        self.auth = auth
        self.headers = headers or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.peak_rss_mb: float | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        last_error = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode}: {' '.join(self.command)}"
                    f"{self._log_tail()}"
                )
            try:
                response = httpx.get(self.ready_url, auth=self.auth, headers=self.headers, timeout=2.0)
                if response.status_code < 500:
                    return
                last_error = f"HTTP {response.status_code}"
            except httpx.TransportError as error:
                last_error = str(error)
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout_s}s ({last_error}){self._log_tail()}")

    def _log_tail(self) -> str:
        if self.log_path and self.log_path.exists():
            return "\n" + self.log_path.read_text(errors="replace")[-2000:]
        return ""

    def sample_peak_rss(self) -> float | None:
        if self.process is not None and self.process.poll() is None:
            self.peak_rss_mb = peak_rss_mb(self.process.pid)
        return self.peak_rss_mb

    def stop(self) -> None:
        if self.process is None:
            return
        self.sample_peak_rss()
        if self.process.poll() is None:
            # The server runs in its own session, so its workers go with it; only this group is signalled.
            try:
                os.killpg(self.process.pid, 15)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()
        self.process = None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --- TAXII workload, shared by every server under test -----------------------------------------------------


def post_envelopes(
    client: httpx.Client,
    objects_url: str,
    payloads: Sequence[bytes],
    marks: list[str],
    status_url_prefix: str | None = None,
    time_cap_s: float | None = None,
) -> dict[str, Any]:
    """POST pre-serialized envelopes one after another over one keep-alive connection.

    Before each POST the client clock is appended to `marks`; those instants later serve as `added_after`
    values that fall inside the collection. A server that answers with a pending status is polled until it
    completes, and that wait counts in the time, so asynchronous ingest is not flattered.
    """
    started = time.perf_counter()
    posted = succeeded = failed = 0
    pending_ids: list[str] = []
    capped = False
    for payload in payloads:
        if time_cap_s is not None and time.perf_counter() - started > time_cap_s:
            capped = True
            break
        marks.append(taxii_timestamp())
        response = client.post(objects_url, content=payload, headers=TAXII_HEADERS)
        if response.status_code not in (200, 201, 202):
            raise RuntimeError(f"POST {objects_url} -> {response.status_code}: {response.text[:500]}")
        status = response.json()
        posted += int(status.get("total_count", 0))
        succeeded += int(status.get("success_count", 0))
        failed += int(status.get("failure_count", 0))
        if status.get("status") != "complete" and status_url_prefix and status.get("id"):
            pending_ids.append(status["id"])
    for status_id in pending_ids:
        succeeded, failed = _wait_for_status(client, f"{status_url_prefix}{status_id}/", succeeded, failed)
    elapsed = time.perf_counter() - started
    return {
        "objects": posted,
        "succeeded": succeeded,
        "failed": failed,
        "seconds": round(elapsed, 3),
        "objects_per_s": round(posted / elapsed) if elapsed else None,
        "capped": capped,
    }


def _wait_for_status(client: httpx.Client, url: str, succeeded: int, failed: int) -> tuple[int, int]:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = client.get(url, headers=TAXII_HEADERS).json()
        if status.get("status") == "complete":
            return succeeded + int(status.get("success_count", 0)), failed + int(
                status.get("failure_count", 0)
            )
        time.sleep(0.01)
    raise RuntimeError(f"status {url} still pending after 600 s")


def page_latencies(
    client: httpx.Client,
    objects_url: str,
    marks: Sequence[str],
    queries: int,
    seed: int,
    request_timeout_s: float,
    time_cap_s: float,
    warmup: int = 5,
) -> dict[str, Any]:
    """Latency of `match[type]=indicator&added_after=<random earlier instant>&limit=100` pages.

    The first `warmup` answers are not recorded (connection set-up, cold caches). If one request exceeds its
    timeout the result says so instead of a latency.
    """
    rng = random.Random(seed)
    latencies_ms: list[float] = []
    returned = 0
    started = time.perf_counter()
    for index in range(queries + warmup):
        if time.perf_counter() - started > time_cap_s:
            break
        params = {"match[type]": "indicator", "added_after": rng.choice(marks), "limit": "100"}
        began = time.perf_counter()
        try:
            response = client.get(
                objects_url, params=params, headers=TAXII_HEADERS, timeout=request_timeout_s
            )
        except httpx.TimeoutException:
            return {"timeout_s": request_timeout_s, "queries": len(latencies_ms)}
        took_ms = (time.perf_counter() - began) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"GET {objects_url} -> {response.status_code}: {response.text[:500]}")
        objects = response.json().get("objects", [])
        if len(objects) > 100 or any(obj.get("type") != "indicator" for obj in objects):
            raise RuntimeError("filtered page returned objects outside the filter")
        if index >= warmup:
            latencies_ms.append(took_ms)
            returned += len(objects)
    return {
        "queries": len(latencies_ms),
        "p50_ms": round(percentile(latencies_ms, 0.50) or 0, 2) if latencies_ms else None,
        "p99_ms": round(percentile(latencies_ms, 0.99) or 0, 2) if latencies_ms else None,
        "avg_objects": round(returned / len(latencies_ms), 1) if latencies_ms else None,
    }


_ENVELOPE_HEAD = re.compile(rb'^\{"more":(true|false)(?:,"next":"([^"]*)")?')


def read_all(
    client: httpx.Client,
    objects_url: str,
    limit: int,
    time_cap_s: float,
    request_timeout_s: float = 120.0,
) -> dict[str, Any]:
    """Read a whole collection (every version) page by page, following `next`.

    Like a bulk client, it asks for the next page while it decodes the current one: when the
    envelope starts with `more`/`next` (Kizuna writes them first) the next request goes out at
    once, in a background thread, and the page is decoded meanwhile. Otherwise it decodes first.
    A server that pages by date instead of `next` is followed through X-TAXII-Date-Added-Last.
    """
    base = {"limit": str(limit), "match[version]": "all"}
    count = pages = 0
    started = time.perf_counter()
    complete = False

    def fetch(params: dict[str, str]) -> httpx.Response:
        response = client.get(objects_url, params=params, headers=TAXII_HEADERS, timeout=request_timeout_s)
        if response.status_code != 200:
            raise RuntimeError(f"GET {objects_url} -> {response.status_code}: {response.text[:500]}")
        return response

    def following(response: httpx.Response, envelope: dict[str, Any] | None) -> dict[str, str] | None:
        """The next request's parameters, or None at the end (decoding only if the head does not say)."""
        head = _ENVELOPE_HEAD.match(response.content[:512])
        if envelope is None and head is not None:
            if head.group(1) == b"false":
                return None
            if head.group(2) is not None:
                return {**base, "next": head.group(2).decode()}
        envelope = envelope if envelope is not None else orjson.loads(response.content)
        if not envelope.get("more"):
            return None
        if envelope.get("next"):
            return {**base, "next": str(envelope["next"])}
        if response.headers.get("X-TAXII-Date-Added-Last"):
            return {**base, "added_after": response.headers["X-TAXII-Date-Added-Last"]}
        raise RuntimeError("envelope says more but gives neither next nor X-TAXII-Date-Added-Last")

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as prefetch:
        pending = prefetch.submit(fetch, dict(base))
        while time.perf_counter() - started < time_cap_s:
            try:
                response = pending.result()
            except httpx.TimeoutException:
                break
            params = following(response, None)
            if params is not None:
                pending = prefetch.submit(fetch, params)
            envelope = orjson.loads(response.content)  # a bulk client decodes with a fast decoder
            count += len(envelope.get("objects", []))
            pages += 1
            if params is None:
                complete = True
                break
    elapsed = time.perf_counter() - started
    return {
        "objects": count,
        "pages": pages,
        "seconds": round(elapsed, 3),
        "objects_per_s": round(count / elapsed) if elapsed else None,
        "complete": complete,
    }


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a size, a count of runs); else a usage error."""
    return _whole(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number of at least 0."""
    return _whole(text, 0)


def _whole(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{text} is less than {least}")
    return value


def names_in(valid: Iterable[str]) -> Any:
    """An argparse type for a comma-separated list of names, each one of ``valid``: a list of them."""
    known = list(valid)

    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in known]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"{', '.join(unknown) or repr(text)}: not one of {', '.join(known)}")
        return names

    return parse


def kizuna_tree(text: str) -> str:
    """An argparse type: a source tree of Kizuna (a directory holding kizuna/__init__.py), to compare with."""
    path = Path(text)
    if not (path / "kizuna" / "__init__.py").is_file():
        raise argparse.ArgumentTypeError(f"{text}: not a Kizuna source tree (no kizuna/__init__.py in it)")
    return text


@contextlib.contextmanager
def fresh_pg_database(admin_url: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database created through ``admin_url``, dropped afterwards."""
    import psycopg

    name = f"kizuna_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def store_url(kind: str, workdir: Path, admin_url: str) -> Iterator[str]:
    """A fresh, empty store: an SQLite file, or a new PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'kizuna.db'}"
        return
    with fresh_pg_database(admin_url) as url:
        yield url
