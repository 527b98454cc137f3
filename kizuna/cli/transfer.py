"""``kizuna import`` and ``kizuna export``: every interchange format in and out of a collection.

The commands live in `kizuna.cli.import_cmd` and `kizuna.cli.export_cmd`; the converters they drive
in `kizuna.formats`.
"""

from __future__ import annotations

import click

from kizuna.cli.export_cmd import export
from kizuna.cli.import_cmd import import_


def register(group: click.Group) -> None:
    group.add_command(import_)
    group.add_command(export)
