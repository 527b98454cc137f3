"""The suite's own readiness check tells its server from another process listening on the same port.

``free_port`` hands out a port that is free when picked; with two workers starting servers, another test's
server can take it first, and a check that only connected would send the test to that server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from tests.conftest import _holds_a_listener


def test_a_listener_is_found_in_the_process_that_holds_it_and_not_elsewhere() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        assert not _holds_a_listener(os.getpid(), port)  # bound, not listening yet
        listener.listen()
        assert _holds_a_listener(os.getpid(), port)
        other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
        try:
            assert not _holds_a_listener(other.pid, port)
        finally:
            other.communicate(b"")
    assert not _holds_a_listener(os.getpid(), port)  # closed


def test_a_listener_of_a_child_process_counts_for_its_parent() -> None:
    code = ("import socket, sys; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
            "print(s.getsockname()[1], flush=True); sys.stdin.read()")
    starter = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {code!r}])"
    parent = subprocess.Popen([sys.executable, "-c", starter], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        port = int(parent.stdout.readline())
        assert _holds_a_listener(parent.pid, port)
    finally:
        parent.communicate(b"")
