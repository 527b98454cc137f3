"""Node configuration: a data directory holding ``kizuna.toml`` (and, by default, the SQLite file).

The directory comes from ``--data DIR`` or ``KIZUNA_DATA`` so that scripts and other tools
can drive a node; everything a node needs to start is in that one file and the store.

An SQLite file inside the data directory is written to ``kizuna.toml`` relative to it
(``store = "sqlite:kizuna.db"``), so a node directory that is copied or moved keeps working on its
own file: the copy never writes into the original. Absolute ``sqlite:///…`` URLs (older configs, or
a file kept elsewhere) and ``postgresql://`` URLs are used as written.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_NAME = "kizuna.toml"
DEFAULT_DATA_DIR = "kizuna-data"
_SQLITE_ABSOLUTE = "sqlite:///"
_SQLITE = "sqlite:"


class ConfigError(Exception):
    """The node's configuration cannot be used; ``file`` and ``line`` say where, when known."""

    def __init__(self, message: str, file: Path | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.file, self.line = file, line


#: The tables of kizuna.toml and the keys each takes (a misspelt key would otherwise be ignored quietly).
KNOWN_KEYS: dict[str, frozenset[str]] = {
    "": frozenset({"store", "server", "metrics"}),
    "server": frozenset({"default_page_size", "max_page_size", "status_retention_hours", "page_rows_per_object",
                         "page_microseconds_per_object"}),
    "metrics": frozenset({"access"}),
}
_TOML_WHERE = re.compile(r"\(at line (\d+), column \d+\)")


def read_toml(path: Path) -> dict[str, Any]:
    """``kizuna.toml`` parsed and its keys checked; a ConfigError names the file and, when it can, the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}", path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})", path) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = _TOML_WHERE.search(str(exc))
        message = _TOML_WHERE.sub("", str(exc)).strip()
        raise ConfigError(f"not valid TOML: {message}", path, int(where.group(1)) if where else None) from None
    for table, known in KNOWN_KEYS.items():
        section = raw if not table else raw.get(table, {})
        if not isinstance(section, dict):
            raise ConfigError(f"[{table}] must be a table", path, line_of(text, f"{table}"))
        for key in section:
            if key not in known:
                in_table = f"[{table}] " if table else ""
                raise ConfigError(f"unknown key {in_table}{key!r} (known: {', '.join(sorted(known))})", path,
                                  line_of(text, key))
    return raw


def line_of(text: str, key: str) -> int | None:
    """The first line that sets ``key`` (or opens that table), to point at it."""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.split("=", 1)[0].strip().strip('"') == key or stripped == f"[{key}]":
            return number
    return None


@dataclass(frozen=True, slots=True)
class NodeConfig:
    data_dir: Path
    store_url: str
    default_page_size: int = 1000
    max_page_size: int = 10000
    status_retention_hours: int = 168
    #: What one page may spend reading rows its reader may not see, per object it asks for (core/query.py).
    page_rows_per_object: int = 20
    page_microseconds_per_object: int = 100

    @property
    def path(self) -> Path:
        return self.data_dir / CONFIG_NAME


def resolve_data_dir(option: str | os.PathLike[str] | None) -> Path:
    return Path(option or os.environ.get("KIZUNA_DATA") or DEFAULT_DATA_DIR).resolve()


def default_store_url(data_dir: Path) -> str:
    return _SQLITE_ABSOLUTE + str((data_dir / "kizuna.db").resolve()).lstrip("/")


def absolute_store_url(url: str, data_dir: Path) -> str:
    """The URL a store is opened with: ``sqlite:relative/path.db`` is taken relative to ``data_dir``."""
    if url.startswith(_SQLITE) and not url.startswith(_SQLITE_ABSOLUTE):
        relative = url[len(_SQLITE):]
        if not relative or relative.startswith("/"):
            raise ConfigError(f"{url!r}: use sqlite:///absolute/path.db or sqlite:path/relative/to/the/node.db")
        return _SQLITE_ABSOLUTE + str((data_dir / relative).resolve()).lstrip("/")
    return url


#: ``scheme://user:password@``: the user information ends at the first ``@`` before any ``/`` and the user at its
#: first ``:``, as libpq reads a connection URI.
_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:@/]*):[^@/]*@")
_PASSWORD_PARAMETER = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)
MASK = "***"


def shown_store_url(url: str) -> str:
    """A store URL as it may be printed, returned in JSON or put in an error: its password (``user:PASSWORD@``,
    or a ``password=`` parameter of a PostgreSQL URL) reads ``***``. Only ``kizuna.toml`` holds it whole."""
    return _PASSWORD_PARAMETER.sub(rf"\1{MASK}", _URL_PASSWORD.sub(rf"\1:{MASK}@", url))


def without_store_password(text: str, url: str) -> str:
    """``text``, a driver's message about the store at ``url``, with the URL's password masked where it shows: the
    URL itself, or the password quoted back by libpq when it cannot be read (``invalid percent-encoded token``)."""
    written = [m.group(0)[len(m.group(1)) + 1:-1] for m in [_URL_PASSWORD.match(url)] if m]
    written += [m.group(0)[len(m.group(1)):] for m in _PASSWORD_PARAMETER.finditer(url)]
    for password in written:
        text = text.replace(f'"{password}"', f'"{MASK}"')
    return text.replace(url, shown_store_url(url))


def portable_store_url(url: str, data_dir: Path) -> str:
    """The URL as written to ``kizuna.toml``: an SQLite file inside the data directory, relative to it."""
    if not url.startswith(_SQLITE_ABSOLUTE):
        return url
    path = Path("/" + url[len(_SQLITE_ABSOLUTE):].lstrip("/"))
    try:
        return _SQLITE + path.relative_to(data_dir.resolve()).as_posix()
    except ValueError:  # kept outside the node directory: only an absolute path can find it
        return url


#: Who may read /metrics (core/health.py): loopback clients only, or tokens granted the metrics right.
METRICS_ACCESS_MODES = ("loopback", "token")


def metrics_access_mode(path: Path, raw: dict[str, Any]) -> str:
    """``[metrics] access`` of the parsed ``kizuna.toml`` at ``path`` (absent: loopback)."""
    table = raw.get("metrics", {})
    mode = table.get("access", "loopback") if isinstance(table, dict) else None
    if mode not in METRICS_ACCESS_MODES:
        raise ConfigError(f"[metrics] access must be one of {', '.join(METRICS_ACCESS_MODES)}, not {mode!r}", path,
                          _line_in(path, "access"))
    return str(mode)


def load_config(data_dir: Path) -> NodeConfig:
    path = data_dir / CONFIG_NAME
    if not path.exists():
        raise ConfigError(f"{path}: no Kizuna node here; create one with `kizuna --data {data_dir} init`")
    raw = read_toml(path)
    store = raw.get("store")
    if not isinstance(store, str):
        raise ConfigError(f"{path}: 'store' must be a store URL string")
    # Checked here, not only where /metrics is served: every command refuses a bad kizuna.toml alike.
    metrics_access_mode(path, raw)
    server = raw.get("server", {})
    try:
        retention = int(server.get("status_retention_hours", 168))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[server] status_retention_hours must be a whole number ({exc})", path,
                          _line_in(path, "status_retention_hours")) from None
    return NodeConfig(
        data_dir=data_dir,
        store_url=absolute_store_url(store, data_dir),
        # A page of no objects is no page: every TAXII read would fail on it.
        default_page_size=_at_least_one(path, server, "default_page_size", 1000),
        max_page_size=_at_least_one(path, server, "max_page_size", 10000),
        status_retention_hours=retention,
        page_rows_per_object=_at_least_one(path, server, "page_rows_per_object", 20),
        page_microseconds_per_object=_at_least_one(path, server, "page_microseconds_per_object", 100),
    )


def _at_least_one(path: Path, server: dict[str, object], name: str, default: int) -> int:
    value = server.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"[server] {name} must be a whole number, 1 or more, not {value!r}", path,
                          _line_in(path, name))
    return value


def _line_in(path: Path, key: str) -> int | None:
    """The line of ``path`` that sets ``key``, for a value found wrong once the file was read."""
    try:
        return line_of(path.read_text(encoding="utf-8"), key)
    except (OSError, UnicodeDecodeError):
        return None


def write_config(config: NodeConfig, carry_from: Path | None = None) -> None:
    """Write ``kizuna.toml``: the store and ``[server]`` from ``config``, and, from the file ``carry_from``
    (a node's own ``kizuna.toml``, copied by a backup or restore), every other table as it was written
    there (``[metrics]``, which this function does not model, among them)."""
    if not config.data_dir.exists():
        # The node's files hold its partners' tokens and keys, and markings govern everything else in them:
        # a directory Kizuna makes is its owner's alone (one given that exists keeps the mode it has).
        config.data_dir.mkdir(parents=True)
        config.data_dir.chmod(0o700)
    # Owner-only before it is written, also over a file that was not: it names the store, a PostgreSQL password
    # with it perhaps (a restore --force writes it anew over whatever was there).
    config.path.touch(mode=0o600)
    config.path.chmod(0o600)
    config.path.write_text(
        "# Kizuna node configuration\n"
        f"store = {_toml_string(portable_store_url(config.store_url, config.data_dir))}\n\n"
        "[server]\n"
        f"default_page_size = {config.default_page_size}\n"
        f"max_page_size = {config.max_page_size}\n"
        f"status_retention_hours = {config.status_retention_hours}\n"
        f"page_rows_per_object = {config.page_rows_per_object}\n"
        f"page_microseconds_per_object = {config.page_microseconds_per_object}\n"
        + (_other_tables(carry_from.read_text(encoding="utf-8")) if carry_from is not None else ""),
        encoding="utf-8",
    )


def _other_tables(text: str) -> str:
    """The tables of a ``kizuna.toml`` other than ``[server]``, verbatim (the store line comes before
    any table and is written anew)."""
    kept: list[str] = []
    current: str | None = None  # the table a line belongs to; None before the first
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):  # [table] or [[array of tables]]
            current = stripped.lstrip("[").split("]", 1)[0].strip()
        if current is not None and current != "server" and current.split(".", 1)[0] != "server":
            kept.append(line)
    return ("\n" + "\n".join(kept) + "\n") if kept else ""


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
