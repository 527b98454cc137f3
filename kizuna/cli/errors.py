"""Rendering a failed command: ``kizuna <command>: <what> [<file>:<line>]`` or a JSON error object."""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson

from kizuna.cli.common import CliError
from kizuna.config import ConfigError
from kizuna.core.errors import KizunaError
from kizuna.detect.errors import DetectError
from kizuna.federation.errors import StateError
from kizuna.stix.bundle_stream import BundleSyntaxError
from kizuna.store.base import StoreError


def command_path(group: click.Group, args: list[str]) -> str:
    """The subcommand words of ``args`` (``tokens create``), read without running anything."""
    words: list[str] = []
    current: click.Command = group
    position = 0
    while position < len(args) and isinstance(current, click.Group):
        arg = args[position]
        if arg == "--":
            break
        if arg.startswith("-"):
            # A global option; skip its value when it takes one and it is not given as --opt=value.
            position += 1
            option = next((p for p in current.params if arg in getattr(p, "opts", ())), None)
            if isinstance(option, click.Option) and not option.is_flag and "=" not in arg:
                position += 1
            continue
        sub = current.commands.get(arg)
        if sub is None:
            break
        words.append(arg)
        current = sub
        position += 1
    return " ".join(words)


def wants_json(args: list[str]) -> bool:
    head = args[: args.index("--")] if "--" in args else args
    return "--json" in head


def describe(exc: BaseException) -> CliError:
    """The operator-facing form of any failure."""
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, click.exceptions.NoArgsIsHelpError) and isinstance(exc.ctx, click.Context):
        # A group run without a subcommand: its help went to stdout (render_failure); say what is missing.
        group = exc.ctx.command
        names = ", ".join(group.commands) if isinstance(group, click.Group) else ""
        return CliError(f"a subcommand is needed: {names}" if names else "arguments are needed",
                        code="usage", exit_code=2)
    if isinstance(exc, click.exceptions.NoSuchOption | click.exceptions.BadParameter
                  | click.exceptions.MissingParameter | click.UsageError):
        return CliError(exc.format_message(), code="usage", exit_code=2)
    if isinstance(exc, click.Abort):
        return CliError("interrupted", code="interrupted", exit_code=130)
    if isinstance(exc, click.ClickException):
        return CliError(exc.format_message(), code="invalid", exit_code=exc.exit_code or 1)
    if isinstance(exc, BundleSyntaxError):
        return CliError(exc.message, code="syntax", file=exc.name, line=exc.line)
    if isinstance(exc, KizunaError):
        return CliError(exc.description, code="not-found" if exc.status == 404 else "invalid")
    if isinstance(exc, ConfigError):
        return CliError(str(exc), code="config", file=str(exc.file) if exc.file else None, line=exc.line)
    if isinstance(exc, StateError):
        return CliError(str(exc), code="federation")
    if isinstance(exc, DetectError):
        return CliError(str(exc), code="detect")
    if isinstance(exc, StoreError):
        return CliError(str(exc), code="store")
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        name = exc.filename if isinstance(exc.filename, str) else None
        return CliError(reason, code="io", file=name)
    if isinstance(exc, UnicodeError):
        return CliError(f"not valid UTF-8 text: {exc}", code="encoding")
    if isinstance(exc, ValueError):
        return CliError(str(exc) or type(exc).__name__, code="invalid")
    return CliError(f"internal error ({type(exc).__name__}: {exc}); rerun with KIZUNA_DEBUG=1 for details",
                    code="internal")


def render_failure(group: click.Group, args: list[str], exc: BaseException) -> int:
    """Print the failure once, in the form the caller asked for, and return the exit status."""
    error = describe(exc)
    if isinstance(exc, click.exceptions.NoArgsIsHelpError) and exc.ctx is not None and not wants_json(args):
        sys.stdout.write(exc.ctx.get_help() + "\n")  # the help the operator was after
        sys.stdout.flush()
    if wants_json(args):
        body: dict[str, Any] = {"code": error.code, "message": error.message, "file": error.file,
                                "line": error.line}
        sys.stdout.write(orjson.dumps({"error": body}).decode() + "\n")
        sys.stdout.flush()
        return error.exit_code
    where = f"{error.file}:{error.line}" if error.file and error.line else (error.file or "")
    name = command_path(group, args)
    message = " ".join(error.message.split())  # one line, whatever the message held
    if where and where not in message:
        message = f"{message}: {where}"
    sys.stderr.write(f"kizuna{' ' + name if name else ''}: {message}\n")
    sys.stderr.flush()
    return error.exit_code
