"""``kizuna audit``: verify and export the hash-chained audit log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

from kizuna.cli.common import emit, json_option, node_of
from kizuna.core.audit import unpack_served
from kizuna.stix.timestamps import format_timestamp


@click.group()
def audit() -> None:
    """The hash-chained audit log."""


@audit.command("verify")
@json_option
@click.pass_context
def audit_verify(ctx: click.Context, as_json: bool) -> None:
    """Check the whole chain; exit 1 and name the first broken record if it was tampered with."""

    result = node_of(ctx).audit.verify()
    payload = {"ok": result.ok, "records": result.records, "problem": result.problem, "seq": result.seq}
    emit(as_json, payload, f"audit log intact: {result.records} records" if result.ok
          else f"audit log BROKEN: {result.problem}")
    if not result.ok:
        ctx.exit(1)


@audit.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write JSON lines here instead of standard output.")
@click.pass_context
def audit_export(ctx: click.Context, output: Path | None) -> None:
    """Write every audit record as one JSON object per line, oldest first.

    ``body`` is the record as sealed, so each line can be checked against its hash; an egress
    record also gets ``served``, its compactly stored (id, version) pairs spelt out.
    """

    stream = output.open("wb") if output else sys.stdout.buffer
    try:
        for r in node_of(ctx).audit.records():
            line: dict[str, Any] = {
                "seq": r.seq, "at": format_timestamp(r.at), "kind": r.kind, "principal": r.principal,
                "body": orjson.loads(r.body), "prev_hash": r.prev_hash, "hash": r.hash,
            }
            if r.kind == "egress" and "served" in line["body"]:
                line["served"] = [list(pair) for pair in unpack_served(line["body"]["served"])]
            stream.write(orjson.dumps(line) + b"\n")
    finally:
        if output:
            stream.close()
        else:
            stream.flush()


def register(group: click.Group) -> None:
    group.add_command(audit)
