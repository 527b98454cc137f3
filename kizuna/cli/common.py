"""What every `kizuna` command shares: the node it works on, output, and how failures look.

A command either succeeds or fails with exactly one line on stderr,
``kizuna <command>: <what went wrong> [<file>:<line>]``, and a non-zero exit; with ``--json`` the
same failure is one ``{"error": {...}}`` object on stdout instead. Commands raise :class:`CliError`
(or let a domain error through); `kizuna.cli.main` renders it. Nothing here prints a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import stat
import sys
import tempfile
import threading
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any, Final

import click
import orjson
from click.core import ParameterSource

from kizuna.config import ConfigError
from kizuna.core.errors import KizunaError
from kizuna.core.node import Node
from kizuna.detect.files import write_target
from kizuna.numerals import whole_number
from kizuna.ops.arrivals import watch_arrivals
from kizuna.policy.tlp import TlpLevel
from kizuna.stix.timestamps import format_timestamp, parse_moment
from kizuna.store.base import StoreError


class CliError(Exception):
    """A failure to report to the operator: what went wrong, and where in which file if known."""

    def __init__(self, message: str, *, code: str = "invalid", file: str | None = None,
                 line: int | None = None, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.file = file
        self.line = line
        # A usage error exits 2, as click's own do (a missing option, a bad choice); any other failure 1.
        self.exit_code = exit_code if exit_code is not None else 2 if code == "usage" else 1


def file_and_line(where: str) -> tuple[str, int | None]:
    """A ``FILE:LINE`` place as its file and line; any other place is a file (or a name) without a line."""
    file, _, line = where.rpartition(":")
    number = whole_number(line)
    return (file, number) if file and number is not None else (where, None)


class FiniteFloat(click.FloatRange):
    """A float in a range that is a number: click's FloatRange lets ``nan`` through (no comparison with
    nan is true), and ``inf`` where there is no upper bound."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if number != number or number in (float("inf"), float("-inf")):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def config_failure(exc: ConfigError) -> CliError:
    """A node whose kizuna.toml cannot be used, as every command reports it: the file and line that say why."""
    return CliError(str(exc), code="node", file=str(exc.file) if exc.file else None, line=exc.line)


class NodeContext:
    """The data directory a command runs on, and the node opened from it on first use."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._node: Node | None = None

    def node(self) -> Node:
        if self._node is None:
            try:
                # Every command's node judges the operations' watchlists as objects arrive (ops/arrivals.py).
                self._node = watch_arrivals(Node.open(self.data_dir))
            except ConfigError as exc:
                raise config_failure(exc) from None
            except (StoreError, KizunaError) as exc:
                raise CliError(str(exc), code="node") from None
        return self._node


def node_of(ctx: click.Context) -> Node:
    """The node of the running command (opened once per command)."""
    context: NodeContext = ctx.obj["context"]
    return context.node()


def data_dir_of(ctx: click.Context) -> Path:
    path: Path = ctx.obj["data_dir"]
    return path


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes: a Japanese character takes two (東京 is four wide)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def padded(text: str, width: int) -> str:
    """``text`` padded to ``width`` terminal columns (``str.ljust`` counts characters, not columns)."""
    return text + " " * max(0, width - display_width(text))


def column_width(values: list[str]) -> int:
    """The terminal columns the widest of ``values`` takes."""
    return max(map(display_width, values), default=0)


def aligned(lines: Sequence[Sequence[str]]) -> list[str]:
    """Rows of cells as aligned text, each column as wide as its widest cell in terminal columns (a Japanese
    name is twice its length wide); the last column is not padded."""
    if not lines:
        return []
    widths = [column_width([line[i] for line in lines]) for i in range(len(lines[0]) - 1)]
    return ["  ".join(padded(cell, width) for cell, width in zip(line, widths, strict=False)) + "  " + line[-1]
            for line in lines]


def emit(as_json: bool, payload: Any, text: str) -> None:
    """Print the result: one JSON object with ``--json``, readable text otherwise."""
    click.echo(orjson.dumps(payload).decode() if as_json else text)


def split_values(values: tuple[str, ...]) -> list[str] | None:
    """Repeatable options that also accept comma lists; absent means 'leave as it is'."""
    if not values:
        return None
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def given_values(option: str, values: tuple[str, ...], hint: str = "") -> list[str] | None:
    """:func:`split_values`, refusing an option given with nothing but empty values: taking it as absent would
    keep the old value, and taking it as empty would clear it, both as if the change asked for were made."""
    found = split_values(values)
    if values and not found:
        raise CliError(f"{option} needs at least one value{hint}, not an empty one", code="usage")
    return found


json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON object on standard output (errors too).")

quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar, even on a terminal.")


@contextlib.contextmanager
def output_stream(path: Path | None) -> Iterator[IO[bytes]]:
    """Standard output, or ``path`` written whole or not at all.

    A file is written under a temporary name in its own directory and renamed over ``path`` only
    when everything was written, so a failed or interrupted export never leaves half a file (and
    never truncates an earlier good one). A directory that does not exist is refused up front.
    """
    if path is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    check_output_path(path)
    # A link is written through to the file it names; a device or a pipe is a stream like standard output.
    target, special = write_target(path)
    if special:
        yield from _write_into(target, path)
        return
    try:
        found: os.stat_result | None = target.stat()
    except OSError:
        found = None
    directory = target.parent if str(target.parent) else Path(".")
    try:
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:
        raise CliError(f"cannot write in {directory}: {exc.strerror or exc}", code="io", file=str(path)) from None
    umask = os.umask(0)
    os.umask(umask)
    # The permissions of the file replaced, else those a plain open() would have given.
    os.fchmod(handle, stat.S_IMODE(found.st_mode) if found is not None else 0o666 & ~umask)
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def dash_is_stdout(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Callback of an output option whose absence means standard output: ``-o -`` means it too."""
    return None if value is not None and str(value) == "-" else value


def refuse_json_without_a_file(ctx: click.Context, output: Path | None, as_json: bool, written: str) -> None:
    """--json prints what was written on standard output, so the output itself must go to a file; ``written``
    names what would otherwise go to standard output (the export itself, the records)."""
    if not as_json or output is not None:
        return
    if stdout_chosen(ctx):
        raise CliError(f"--json cannot go with -o -: {written} is written to standard output then", code="usage",
                       exit_code=2)
    raise CliError(f"--json needs -o FILE: without it {written} is written to standard output", code="usage",
                   exit_code=2)


def stdout_chosen(ctx: click.Context) -> bool:
    """Whether ``-o -`` was given: `dash_is_stdout` makes it None, as if no -o had been given at all."""
    return ctx.params.get("output") is None and ctx.get_parameter_source("output") is ParameterSource.COMMANDLINE


def check_output_path(path: Path) -> None:
    """Refuse, before any work, an output file that cannot be written where it is asked: a directory, or a
    place whose directory is missing or is a file (a command that stores something first, such as an
    import with --report, must not fail only after storing)."""
    if not str(path) or str(path) == ".":
        raise CliError("the output needs a file name", code="usage")
    if str(path) == "-":  # taken by commands whose output may go to standard output (`dash_is_stdout`)
        raise CliError("'-' (standard output) is not an output of this command: give a file name", code="usage")
    if path.is_dir():
        raise CliError("is a directory, not a file", code="io", file=str(path))
    target = path.resolve() if path.is_symlink() else path
    directory = target.parent if str(target.parent) else Path(".")
    if directory.exists() and not directory.is_dir():
        raise CliError(f"{directory} is a file, not a directory", code="io", file=str(path))
    if not directory.is_dir():
        raise CliError(f"directory {directory} does not exist", code="io", file=str(path))


def _write_into(target: Path, path: Path) -> Iterator[IO[bytes]]:
    try:
        stream = target.open("wb")
    except OSError as exc:
        raise CliError(f"cannot write: {exc.strerror or exc}", code="io", file=str(path)) from None
    try:
        with stream:
            yield stream
    except OSError as exc:  # a device that refuses the bytes (/dev/full): named, like any output that fails
        raise CliError(f"cannot write: {exc.strerror or exc}", code="io", file=str(path)) from None


class Moment(click.ParamType):
    """A moment as an operator types it (a timestamp, or an ISO 8601 date or time, UTC without an offset),
    handed on as the TAXII timestamp text that filters take, or with ``micros`` as µs since the epoch."""

    name = "moment"

    def __init__(self, micros: bool = False) -> None:
        self.micros = micros

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            at = parse_moment(str(value).strip())
            return at if self.micros else format_timestamp(at)
        except ValueError:
            self.fail(f"{value!r} is not a date or timestamp such as 2026-03-01 or 2026-03-01T09:30:00Z", param, ctx)


def count(number: int, noun: str, plural: str | None = None) -> str:
    """``1 line``, ``2 lines``: a number and its noun, as an operator reads it."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"


def were(number: int) -> str:
    """The verb after `count`: ``1 line was``, ``2 lines were``."""
    return "was" if number == 1 else "were"


class TokenId(click.ParamType):
    """A token's id, as `tokens list` shows it. A whole token (``kz_<id>_<secret>``) pasted in its place is
    refused without being repeated, so that the secret does not end up in a terminal's scrollback or a log."""

    name = "token_id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value).strip()
        if text.startswith("kz_") and "_" in text[3:]:
            self.fail(f"that is a whole token with its secret, not a token id: give its id, "
                      f"{text[3:].partition('_')[0]!r} (see `kizuna tokens list`)", param, ctx)
        return text


token_id_type = TokenId()
port_type = click.IntRange(1, 65535)

#: The TLP 2.0 levels as options take them, in any case (``--tlp GREEN`` is ``green``).
TLP_LEVEL_NAMES: Final = tuple(level.token for level in TlpLevel)
tlp_level = click.Choice(TLP_LEVEL_NAMES, case_sensitive=False)


class Toggle(click.Option):
    """An on/off flag pair (``--x/--no-x``, ``cls=Toggle``) that refuses both forms on one command line: for
    settings such as who sees everything, silently taking the last one given is a trap."""

    def add_to_parser(self, parser: Any, ctx: click.Context) -> None:
        # Both forms append to one list, so every form given is known (the usual flag keeps only the last).
        parser.add_option(obj=self, opts=self.opts, dest=self.name, action="append_const", const=True)
        parser.add_option(obj=self, opts=self.secondary_opts, dest=self.name, action="append_const", const=False)

    def type_cast_value(self, ctx: click.Context, value: Any) -> Any:
        if isinstance(value, list):
            if len(set(value)) > 1:
                raise click.BadParameter(f"{self.opts[0]} and {self.secondary_opts[0]} contradict each other; "
                                         "give one of them", ctx=ctx, param=self)
            value = value[0] if value else None
        return super().type_cast_value(ctx, value)


def check_port_free(host: str, port: int) -> None:
    """Refuse, before anything is printed or created, a host:port this process could not listen on.

    The same bind the server will do (with SO_REUSEADDR, as uvicorn sets it), released at once.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", code="port") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            reason = "the port is already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise CliError(f"cannot listen on {host}:{port}: {reason}", code="port") from None


#: Where to knock to learn that a server bound to a wildcard address listens.
_WILDCARD_LOOPBACK: Final = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


def when_listening(host: str, port: int, then: Callable[[], None]) -> threading.Event:
    """Call ``then`` (in a thread) once host:port accepts a connection; set the returned event to give up.

    The server binds only after it has imported and built the app, a second or two after it starts;
    a banner printed before that sends an operator's first request to a closed port.
    """
    stop = threading.Event()
    target = _WILDCARD_LOOPBACK.get(host, host)

    def knock() -> None:
        while not stop.is_set():
            try:
                with socket.create_connection((target, port), timeout=1):
                    pass
            except OSError:
                stop.wait(0.05)  # not listening yet: knock again shortly
                continue
            if not stop.is_set():
                then()
            return

    threading.Thread(target=knock, name="kizuna-announce", daemon=True).start()
    return stop


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM (`kill PID`, a service manager's stop) is Ctrl-C: a KeyboardInterrupt that a
    long-running command ends on, keeping what it has done, where the default action would kill it with nothing
    saved. SIGINT is caught explicitly too: a shell starts background jobs with it ignored, and they must still
    stop."""
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
