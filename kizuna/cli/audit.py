"""``kizuna audit``: verify and export the hash-chained audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from kizuna.cli.common import (
    CliError,
    dash_is_stdout,
    emit,
    json_option,
    node_of,
    output_stream,
    refuse_json_without_a_file,
)
from kizuna.core.audit import KINDS, unpack_served
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
    payload: dict[str, object] = {"ok": result.ok, "records": result.records, "problem": result.problem,
                                  "seq": result.seq}
    if not result.ok:  # a failure like any command's: the report, then one line naming the broken record
        payload["error"] = {"code": "audit-broken", "message": f"audit log BROKEN: {result.problem}",
                            "file": None, "line": None}
    emit(as_json, payload, f"audit log intact: {result.records} records" if result.ok
          else f"audit log BROKEN: {result.problem}")
    if not result.ok:
        if not as_json:
            click.echo(f"kizuna audit verify: the chain is broken at record {result.seq}", err=True)
        ctx.exit(1)


@audit.command("export")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, callback=dash_is_stdout,
              help="Write the JSON lines to this file (all or nothing) instead of standard output (-: standard "
              "output).")
@click.option("--kind", "kinds", multiple=True, metavar="KIND",
              help="Only records of this kind, e.g. import-report, write, egress (repeatable).")
@click.option("--json", "as_json", is_flag=True,
              help="With -o: print what was written as one JSON object (errors too).")
@click.pass_context
def audit_export(ctx: click.Context, output: Path | None, kinds: tuple[str, ...], as_json: bool) -> None:
    """Write every audit record as one JSON object per line, oldest first.

    "body" is the record as sealed, so each line can be checked against its hash; an egress
    record also gets "served", its compactly stored (id, version) pairs spelt out.
    """

    unknown = sorted(set(kinds) - KINDS)
    if unknown:
        raise CliError(f"no such record kind {', '.join(map(repr, unknown))}; the kinds are "
                       + ", ".join(sorted(KINDS)), code="usage", exit_code=2)
    refuse_json_without_a_file(ctx, output, as_json, "the records")
    node = node_of(ctx)
    count = 0
    with output_stream(output) as stream:
        for r in node.audit.records():
            if kinds and r.kind not in kinds:
                continue
            line: dict[str, Any] = {
                "seq": r.seq, "at": format_timestamp(r.at), "kind": r.kind, "principal": r.principal,
                "body": orjson.loads(r.body), "prev_hash": r.prev_hash, "hash": r.hash,
            }
            if r.kind == "egress" and "served" in line["body"]:
                line["served"] = [list(pair) for pair in unpack_served(line["body"]["served"])]
            stream.write(orjson.dumps(line) + b"\n")
            count += 1
    if output is not None:  # the summary goes where the records did not: --json on stdout, else stderr
        text = f"Exported {count} audit records to {output}"
        if as_json:
            emit(True, {"records": count, "path": str(output)}, text)
        else:
            click.echo(text, err=True)


def register(group: click.Group) -> None:
    group.add_command(audit)
