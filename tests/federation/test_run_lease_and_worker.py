"""A killed run stops being "running", a killed worker is replaced, and a sync says what it did."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
from pathlib import Path

from tests.federation.helpers import (
    TLP_AMBER_STRICT,
    ScriptedServer,
    add_partner,
    grant_partner,
    indicator,
    make_fed_node,
    poll,
)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead all the same. It may also be reaped between the two questions.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def test_a_run_killed_with_kill_9_is_not_running_after_its_lease_expires(tmp_path: Path, store_url: str) -> None:
    jp = make_fed_node(tmp_path, "JP", "JPN", store_url=store_url)
    silent = ScriptedServer(None)  # accepts connections and never answers: the run waits inside a request
    jp.cli_json("partners", "add", "SILENT", "--url", silent.url, "--map", "shared=c:pull", "--token", "t")
    run = subprocess.Popen(
        [sys.executable, "-m", "kizuna", "--data", str(jp.data_dir), "sync", "SILENT", "--lease-ttl", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        running = poll(lambda: (s := jp.cli_json("partners", "show", "SILENT")["status"])["state"] == "running"
                       and s, what="the run to start")
        assert running["running_in"] and f":{run.pid}:" in running["running_in"]
        poll(lambda: silent.connections, what="the run to reach the partner")
        # Still running while it waits inside one request: the heartbeat, not progress, renews the lease.
        lease = "SELECT expires_at FROM fed_lease WHERE name = 'run:SILENT'"
        first_expiry = jp.sql(lease)[0][0]
        poll(lambda: jp.sql(lease)[0][0] != first_expiry, what="a renewal of the run lease")
        assert jp.cli_json("partners", "show", "SILENT")["status"]["state"] == "running"
        run.kill()
        run.wait()
        status = poll(lambda: (s := jp.cli_json("partners", "show", "SILENT")["status"])["state"] != "running"
                      and s, deadline_s=30, what="the lease of the killed run to expire")
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        silent.close()
    assert status["state"] == "interrupted" and status["running_in"] is None
    assert "stopped without finishing" in status["last_error"]
    listed = jp.cli("partners", "list").stdout
    assert "interrupted" in listed and "stopped without finishing" in listed


def test_serve_restarts_its_sync_worker_after_kill_9(tmp_path: Path, store_url: str) -> None:
    uk = make_fed_node(tmp_path, "UK", "GBR")
    jp = make_fed_node(tmp_path, "JP", "JPN", store_url=store_url)
    grant_partner(uk, jp, "JPN")
    uk.start()
    try:
        uk.post(indicator(uk.identity))
        jp.cli_json("partners", "add", "UK", "--url", uk.api_root_url, "--map", f"shared={uk.collection}:pull",
                    "--token", uk.tokens["JP"], "--schedule", "1")
        jp.start(worker=True)
        poll(lambda: len(jp.versions()) == 1, what="the first worker's sync")
        holder = poll(lambda: jp.sql("SELECT holder FROM fed_lease WHERE name = 'sync-worker'"),
                      what="the worker's lease")[0][0]
        first_pid = int(holder.split(":")[1])
        assert jp.server is not None and first_pid != jp.server.process.pid
        os.kill(first_pid, signal.SIGKILL)
        poll(lambda: not _pid_alive(first_pid), deadline_s=30, what="the worker to die")

        # A new worker takes over (the supervisor gave the dead one's lease back) and syncs new versions.
        uk.post(indicator(uk.identity))
        poll(lambda: len(jp.versions()) == 2, what="a new worker's sync")
        new_holder = poll(lambda: jp.sql("SELECT holder FROM fed_lease WHERE name = 'sync-worker'"),
                          what="the new worker's lease")[0][0]
        second_pid = int(new_holder.split(":")[1])
        assert second_pid != first_pid and _pid_alive(second_pid)
        assert jp.server.process.poll() is None  # the server itself never stopped
    finally:
        jp.stop()
        uk.stop()
    assert jp.server.process.stderr is not None
    assert b"the sync worker exited" in jp.server.process.stderr.read()


def test_a_push_the_agreement_hides_entirely_says_so(tmp_path: Path) -> None:
    uk = make_fed_node(tmp_path, "UK", "GBR")
    jp = make_fed_node(tmp_path, "JP", "JPN")
    grant_partner(jp, uk, "GBR")
    jp.start()
    try:
        uk.import_objects(indicator(uk.identity, versions=3, marking=TLP_AMBER_STRICT))
        add_partner(uk, jp, "push")  # no --org, no --agreement: the partner may see TLP:CLEAR only
        result = uk.cli("sync", "JP", "--json")
        run = json.loads(result.stdout)["runs"][0]
        text = uk.cli("partners", "show", "JP").stdout
        shown = uk.cli_json("partners", "show", "JP")["status"]
    finally:
        jp.stop()
    assert run["error"] is None
    # Only the definitions travelled (the TLP marking and its extension), never an indicator.
    assert {sid.split("--")[0] for sid, _ in jp.versions()} <= {"marking-definition", "extension-definition"}
    assert run["pushed"] == len(jp.versions())
    assert len(run["notes"]) == 1 and "the agreement hides everything" in run["notes"][0]
    assert "none of the 3 version(s) waiting" in run["notes"][0]
    # "pushed" counts what went, definitions too; the note says that was all.
    assert run["notes"][0].endswith(f"no object was sent but {run['pushed']} marking or extension definition(s)")
    assert shown["notes"] == run["notes"] and "note:" in text and "hides everything" in text


def test_sync_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    uk = make_fed_node(tmp_path, "UK", "GBR")
    jp = make_fed_node(tmp_path, "JP", "JPN")
    grant_partner(uk, jp, "JPN")
    uk.start()
    try:
        uk.post([o for _ in range(5) for o in indicator(uk.identity, versions=2)])
        add_partner(jp, uk, "pull", page_size=3)
        tty_err = _run_with_tty_stderr(jp.data_dir, "sync", "UK")
        json_err = _run_with_tty_stderr(jp.data_dir, "sync", "UK", "--json")
        piped = jp.cli("sync", "UK")
    finally:
        uk.stop()
    assert "pulled 10" in tty_err and "objects/s" in tty_err and "UK" in tty_err
    assert json_err == ""  # --json: nothing but the JSON object
    assert piped.stderr == ""  # not a terminal: no progress display


def _run_with_tty_stderr(data_dir: Path, *args: str) -> str:
    """Run ``kizuna`` with stderr on a pseudo-terminal; return what it wrote there."""
    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "160"}
    process = subprocess.Popen([sys.executable, "-m", "kizuna", "--data", str(data_dir), *args],
                               stdout=subprocess.DEVNULL, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=120) == 0
    return b"".join(chunks).decode(errors="replace")
