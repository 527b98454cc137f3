"""The ``kizuna`` command: one module per command group, each a thin call into the node.

`main` is the only place failures are rendered: every error, expected or not, becomes one line on
stderr (or one JSON error object with ``--json``) and a non-zero exit; no traceback reaches a user.
Set ``KIZUNA_DEBUG=1`` to see the traceback of an unexpected error.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from kizuna.cli.common import NodeContext
from kizuna.cli.errors import render_failure
from kizuna.cli.lazy import LazyCommands
from kizuna.config import DEFAULT_DATA_DIR, resolve_data_dir

#: Each command of ``kizuna`` and the module (in kizuna/cli) whose ``register`` adds it. A command's
#: module is imported when the command runs, so `kizuna tokens create` does not pay for the matcher,
#: federation and MISP converters (a third of a second of start-up each time; tests run the CLI a lot).
#: tests/cli/test_lazy_commands.py checks this table against every module's ``register``.
COMMAND_MODULES: dict[str, str] = {
    "init": "node", "serve": "node", "status": "node", "collections": "node", "api-roots": "node", "orgs": "node",
    "tokens": "tokens", "cursor-keys": "tokens", "objects": "objects", "search": "search",
    "import": "transfer", "export": "transfer", "policy": "policy", "agreements": "policy", "audit": "audit",
    "partners": "partners", "sync": "partners", "match": "match", "detect": "detect_cmd", "demo": "demo",
    "metrics": "metrics", "dashboard": "dashboard", "preview": "dashboard", "feeds": "feeds",
    "hash": "hashes", "hashes": "hashes", "backup": "backup", "restore": "backup", "doctor": "doctor",
    "ops": "ops",
}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data", "data", type=click.Path(file_okay=False), default=None,
    help="Node data directory (default: $KIZUNA_DATA or ./kizuna-data).",
)
@click.version_option(package_name="kizuna")
@click.pass_context
def cli(ctx: click.Context, data: str | None) -> None:
    """Kizuna: share STIX 2.1 over TAXII 2.1 with partner organisations."""
    if data is not None and not data.strip():  # an unset variable in a script: not the default directory
        raise click.BadParameter("is empty: give the node's data directory", param_hint="'--data'")
    if data is None and not os.environ.get("KIZUNA_DATA", DEFAULT_DATA_DIR).strip():  # the same slip, exported
        raise click.BadParameter(f"is empty: give the node's data directory, or unset it for ./{DEFAULT_DATA_DIR}",
                                 param_hint="'KIZUNA_DATA'")
    data_dir = resolve_data_dir(data)
    ctx.obj = {"data_dir": data_dir, "context": NodeContext(data_dir)}


cli.commands = LazyCommands(COMMAND_MODULES)


def main(argv: list[str] | None = None) -> int:
    """Run ``kizuna``; returns the exit status (0 on success)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result: Any = cli.main(args=args, prog_name="kizuna", standalone_mode=False)
    except Exception as exc:  # every failure is rendered, never raised at the operator
        if os.environ.get("KIZUNA_DEBUG") and not isinstance(exc, click.ClickException):
            raise
        return render_failure(cli, args, exc)
    except KeyboardInterrupt:
        return render_failure(cli, args, click.Abort())
    return result if isinstance(result, int) else 0
