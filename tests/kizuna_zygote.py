"""A process that has imported the ``kizuna`` command once and forks a child to run each command the tests ask for.

Run as ``python tests/kizuna_zygote.py SOCKET``; tests/kizuna_process.py starts it and talks to it. A test's
command still runs in a process of its own, with its own arguments, environment, working directory, stdin,
stdout and stderr, and ends the way ``python -m kizuna`` ends (``sys.exit`` unwinding the interpreter); only the
imports, a third of a second of each start on these machines, are done once before the fork instead of in
every process. Each request is one datagram on a SOCK_SEQPACKET socket: the JSON of argv, env and cwd, with
the stdin, stdout and stderr descriptors attached. The answer is the child's pid, then its exit code (the
same number ``subprocess`` reports: negative for a signal). The zygote exits when its stdin reaches end of
file, that is when the test process that started it is gone.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import random
import selectors
import socket
import sys
from typing import Any


def _import_every_command() -> None:
    from kizuna.cli import COMMAND_MODULES

    for module in sorted(set(COMMAND_MODULES.values())):
        importlib.import_module(f"kizuna.cli.{module}")


def _serve(path: str) -> tuple[dict[str, Any], list[int]]:
    """Answer requests until the parent goes; returns only in a forked child, with that child's request."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(128)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "listener")
    selector.register(sys.stdin, selectors.EVENT_READ, "parent")
    print("ready", flush=True)
    while True:
        for key, _ in selector.select():
            if key.data == "parent":
                if not os.read(sys.stdin.fileno(), 4096):
                    sys.exit(0)
            elif key.data == "listener":
                conn, _ = listener.accept()
                message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
                pid = os.fork()
                if pid == 0:
                    for other in list(selector.get_map().values()):
                        if isinstance(other.data, tuple):
                            other.data[1].close()
                            os.close(other.fd)
                    selector.close()
                    listener.close()
                    conn.close()
                    return json.loads(message), fds
                for fd in fds:
                    os.close(fd)
                _answer(conn, pid)
                selector.register(os.pidfd_open(pid), selectors.EVENT_READ, (pid, conn))
            else:
                pid, conn = key.data
                selector.unregister(key.fd)
                os.close(key.fd)
                _, status = os.waitpid(pid, 0)
                _answer(conn, os.waitstatus_to_exitcode(status))
                conn.close()


def _answer(conn: socket.socket, number: int) -> None:
    try:
        conn.send(str(number).encode())
    except OSError:  # the test stopped waiting (a timeout); the zygote serves the others
        pass


def _become(request: dict[str, Any], fds: list[int]) -> list[str]:
    """Turn this forked child into the process ``python -m kizuna ARGV`` would have been, in a session of its
    own (as ``start_new_session=True``) so that a command that hangs is stopped with all it started."""
    os.setsid()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    random.seed()  # a fresh interpreter seeds from the system; a fork would share the zygote's sequence
    argv: list[str] = request["argv"]
    sys.argv = ["kizuna", *argv]
    return argv


if __name__ == "__main__":
    _import_every_command()
    from kizuna.cli import main

    # Without this, each child's collections and its exit walk the whole imported heap, copying every page it
    # shares with the zygote: 0.25 s a command, most of what the fork saves. What is frozen is still freed by
    # reference counting; only cycles among the imports stay, as in any process that never collects them.
    gc.collect()
    gc.freeze()

    arguments = _become(*_serve(sys.argv[1]))
    sys.exit(main(arguments))
