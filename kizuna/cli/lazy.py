"""The ``kizuna`` group's commands, imported when first asked for.

click keeps a group's commands in ``Group.commands``; this mapping stands in for that dict. Asking for
one command (``get``, ``[]``) imports only the module that registers it; listing names does not import
anything; walking the items (``--help``, the tests' command walk) imports every module.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping

import click


class LazyCommands(MutableMapping[str, click.Command]):
    def __init__(self, modules: dict[str, str]) -> None:
        self._modules = dict(modules)  # command name -> module of kizuna.cli whose register() adds it
        self._loaded: dict[str, click.Command] = {}

    def _load(self, name: str) -> None:
        module = importlib.import_module(f"kizuna.cli.{self._modules[name]}")
        scratch = click.Group()
        module.register(scratch)
        for added, command in scratch.commands.items():
            self._loaded.setdefault(added, command)

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded and name in self._modules:
            self._load(name)
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        self._modules.pop(name, None)
        del self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._modules, *self._loaded]))

    def __len__(self) -> int:
        return len(set(self._modules) | set(self._loaded))

    def __contains__(self, name: object) -> bool:
        return name in self._modules or name in self._loaded
