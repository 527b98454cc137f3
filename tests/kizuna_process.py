"""Run the real ``kizuna`` command in a process of its own, forked from a zygote that imported it once.

The suite runs the command thousands of times; a fresh interpreter spends a third of a second importing the
package each time (tests/cli took 496 s so on two workers, 131 s forked). tests/kizuna_zygote.py explains
what the child shares with the zygote (only what the imports built). ``KIZUNA_TEST_SPAWN=1`` starts a new
interpreter for every command instead, as ``python -m kizuna``.
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

_ZYGOTE = Path(__file__).with_name("kizuna_zygote.py")
_started: tuple[subprocess.Popen[bytes], str] | None = None
_starting = threading.Lock()  # tests run commands from several threads at once


def _zygote_socket() -> str:
    """The socket of this process's zygote, started on first use (and again if it died)."""
    global _started
    with _starting:
        if _started is None or _started[0].poll() is not None:
            _started = _start()
        return _started[1]


def _start() -> tuple[subprocess.Popen[bytes], str]:
    path = os.path.join(tempfile.mkdtemp(prefix="kizuna-zygote-"), "socket")
    process = subprocess.Popen(
        # -P: tests/ must not come first on sys.path, where its folders could stand in for packages
        [sys.executable, "-P", str(_ZYGOTE), path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        cwd=Path(__file__).parent.parent,
    )
    assert process.stdout is not None
    if process.stdout.readline() != b"ready\n":
        raise AssertionError(f"the kizuna zygote did not start ({process.wait()})")
    atexit.register(_stop, process, path)
    return process, path


def _stop(process: subprocess.Popen[bytes], path: str) -> None:
    if process.stdin is not None:
        process.stdin.close()  # the zygote exits at end of file
    process.wait(timeout=30)
    shutil.rmtree(os.path.dirname(path), ignore_errors=True)


def run_kizuna(
    args: list[str], *, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run([python, -m, kizuna, *args], capture_output=True, text=True, input=input, env=env,
    timeout=timeout, start_new_session=True)``, forked; on a timeout the command's session is killed."""
    if os.environ.get("KIZUNA_TEST_SPAWN"):
        return subprocess.run([sys.executable, "-m", "kizuna", *args], capture_output=True, text=True,
                              input=input, env=env, timeout=timeout, start_new_session=True)
    stdin_read, stdin_write = os.pipe()
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    request = json.dumps({"argv": args, "env": dict(os.environ if env is None else env), "cwd": os.getcwd()}).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as conn:
        conn.connect(_zygote_socket())
        socket.send_fds(conn, [request], [stdin_read, out_write, err_write])
        for fd in (stdin_read, out_write, err_write):
            os.close(fd)
        pid = int(conn.recv(64))
        writer = threading.Thread(target=_write_and_close, args=(stdin_write, (input or "").encode()), daemon=True)
        writer.start()
        try:
            out, err = _read_both(out_read, err_read, timeout)
        except subprocess.TimeoutExpired:
            os.killpg(pid, signal.SIGKILL)
            raise
        finally:
            os.close(out_read)
            os.close(err_read)
        conn.settimeout(timeout)
        returncode = int(conn.recv(64))
        writer.join()
    return subprocess.CompletedProcess(["kizuna", *args], returncode, _text(out), _text(err))


def _write_and_close(fd: int, data: bytes) -> None:
    try:
        with open(fd, "wb") as pipe:
            pipe.write(data)
    except BrokenPipeError:  # the command did not read all of its stdin, as subprocess allows
        pass


def _read_both(out_fd: int, err_fd: int, timeout: float) -> tuple[bytes, bytes]:
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(out_fd, selectors.EVENT_READ)
        selector.register(err_fd, selectors.EVENT_READ)
        while selector.get_map():
            ready = selector.select(max(0.0, deadline - time.monotonic()))
            if not ready:
                raise subprocess.TimeoutExpired(["kizuna"], timeout)
            for key, _ in ready:
                data = os.read(key.fd, 1 << 16)
                if data:
                    chunks[key.fd].append(data)
                else:
                    selector.unregister(key.fd)
    return b"".join(chunks[out_fd]), b"".join(chunks[err_fd])


def _text(data: bytes) -> str:
    """As ``text=True`` decodes: the locale's encoding with universal newlines."""
    return data.decode().replace("\r\n", "\n").replace("\r", "\n")
