"""The command table of `kizuna` matches what each command module registers, and a command imports
only its own module (start-up is paid on every run of the CLI)."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import click

import kizuna.cli
from kizuna.cli import COMMAND_MODULES, cli


def test_the_table_names_every_command_of_every_module_and_nothing_else() -> None:
    registered: dict[str, str] = {}
    for info in pkgutil.iter_modules(kizuna.cli.__path__):
        module = importlib.import_module(f"kizuna.cli.{info.name}")
        if callable(getattr(module, "register", None)):
            scratch = click.Group()
            module.register(scratch)
            registered |= {name: info.name for name in scratch.commands}
    assert registered == COMMAND_MODULES


def test_every_command_is_found_through_the_group() -> None:
    for name in COMMAND_MODULES:
        command = cli.commands.get(name)
        assert command is not None and command.name == name
    assert cli.commands.get("no-such-command") is None
    assert sorted(cli.list_commands(click.Context(cli))) == sorted(COMMAND_MODULES)


def test_running_one_command_imports_only_its_module() -> None:
    probe = ("import sys\nfrom kizuna.cli import main\nmain(['tokens', '--help'])\n"
             "print(' '.join(sorted(m for m in sys.modules if m.startswith('kizuna.cli.'))))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    modules = set(loaded.stdout.strip().splitlines()[-1].split())
    assert "kizuna.cli.tokens" in modules
    assert not modules & {"kizuna.cli.match", "kizuna.cli.ops", "kizuna.cli.hashes", "kizuna.cli.transfer"}


def test_a_command_that_never_syncs_does_not_import_the_federation_room() -> None:
    """Failures of every command are rendered by kizuna/cli/errors.py, which names the federation's StateError
    from its own small module (kizuna/federation/errors.py), not from the partner state and all it imports."""
    probe = ("import sys\nfrom kizuna.cli import main\nmain(['tokens', '--help'])\n"
             "print(' '.join(sorted(m for m in sys.modules if m.startswith('kizuna.federation'))))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert set(loaded.stdout.strip().splitlines()[-1].split()) <= {"kizuna.federation", "kizuna.federation.errors"}


def test_a_command_that_opens_a_node_without_paging_imports_no_tls_or_cipher(tmp_path: Path) -> None:
    """The cursor sealer's cipher (cryptography) and the certificate fingerprint (ssl) are imported on first use:
    a tenth of the start of a command such as `kizuna tokens list`, which never pages nor reads a certificate."""
    node = tmp_path / "node"
    subprocess.run([sys.executable, "-m", "kizuna", "--data", str(node), "init", "--json"], capture_output=True,
                   check=True)
    for command in (["tokens", "list"], ["status"]):  # `status` shares its module with `serve` and its TLS checks
        probe = ("import sys\nfrom kizuna.cli import main\n"
                 f"status = main(['--data', {str(node)!r}, *{command!r}, '--json'])\n"
                 "print('status', status, 'loaded', *(m for m in ('ssl', 'cryptography', 'kizuna.federation.state')"
                 " if m in sys.modules))")
        loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
        assert loaded.stdout.strip().splitlines()[-1] == "status 0 loaded", command
