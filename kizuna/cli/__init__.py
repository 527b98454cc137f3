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

from kizuna.cli import (
    audit,
    backup,
    dashboard,
    demo,
    detect_cmd,
    doctor,
    feeds,
    hashes,
    match,
    metrics,
    node,
    objects,
    ops,
    partners,
    policy,
    search,
    tokens,
    transfer,
)
from kizuna.cli.common import NodeContext
from kizuna.cli.errors import render_failure
from kizuna.config import resolve_data_dir


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data", "data", type=click.Path(file_okay=False), default=None,
    help="Node data directory (default: $KIZUNA_DATA or ./kizuna-data).",
)
@click.version_option(package_name="kizuna")
@click.pass_context
def cli(ctx: click.Context, data: str | None) -> None:
    """Kizuna: share STIX 2.1 over TAXII 2.1 with partner organisations."""
    data_dir = resolve_data_dir(data)
    ctx.obj = {"data_dir": data_dir, "context": NodeContext(data_dir)}


for _module in (node, tokens, objects, search, transfer, policy, audit, partners, match, detect_cmd, demo,
                metrics, dashboard, feeds, hashes, backup, doctor, ops):
    _module.register(cli)


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
