"""Every ``kizuna`` command, fed bad input as a real process, fails the one way the CLI promises.

The commands are found by walking ``kizuna.cli.cli``, so a command added later is covered without
touching this file. Each case runs ``python -m kizuna …`` and checks the contract of a failure:
no traceback, exactly one line on stderr that starts with ``kizuna <command>:``, a non-zero exit,
and with ``--json`` exactly one ``{"error": {"code", "message", "file", "line"}}`` object on
stdout instead. A success must look like one (no error line, one JSON object with ``--json``).
Inputs that are certainly wrong (no node, a broken node, a missing file, a word where a number
belongs, a value outside a choice) must fail; odd but perhaps acceptable values (an empty
string, a long one, a path-like one) only have to keep to the contract either way.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from kizuna.cli import cli
from tests.conftest import kizuna_json
from tests.kizuna_process import run_kizuna

#: Commands that work without a node (they read files or create the node themselves).
WITHOUT_A_NODE = {"match", "init", "demo", "hash", "restore", "doctor"}
#: A value for each required parameter, so that the parameter under test is the one that is wrong.
PLAIN = "c1"  # the test node has a collection aliased c1 and an organisation named c1
ERROR_LINE = re.compile(r"^kizuna(?: [\w-]+)*: \S")
TIMEOUT_S = 120  # a command still running after this is a hang, and a failure


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, (*path, name))


COMMANDS = [(path, command) for path, command in walk(cli) if path]
LEAVES = [(path, command) for path, command in COMMANDS if not isinstance(command, click.Group)]


@dataclass(frozen=True)
class Case:
    """One invocation: the words after ``kizuna``, and whether it must fail."""

    what: str
    args: tuple[str, ...]
    data_dir: Path
    as_json: bool
    must_fail: bool

    def argv(self) -> list[str]:
        return ["--data", str(self.data_dir), *self.args,
                *(["--json"] if self.as_json else [])]


@dataclass(frozen=True)
class World:
    node: Path  # an initialised SQLite node with collection c1 and organisation c1
    broken: Path  # a directory whose kizuna.toml is not TOML
    absent: Path  # a directory that does not exist
    directory: Path  # an existing directory, given where a file belongs
    garbage: Path  # a file of bytes that are neither JSON nor text
    missing_file: Path  # a file in a directory that does not exist


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    base = tmp_path_factory.mktemp("bad-input")
    node = base / "node"
    kizuna_json(node, "init", "--org-name", "Home", "--country", "GBR")
    kizuna_json(node, "collections", "create", "--title", "C1", "--alias", PLAIN)
    kizuna_json(node, "orgs", "create", PLAIN, "--country", "JPN")
    broken = base / "broken"
    broken.mkdir()
    (broken / "kizuna.toml").write_text('store = "sqlite:kizuna.db"\n[[[ not toml\n')
    directory = base / "a-directory"
    directory.mkdir()
    garbage = base / "garbage.bin"
    garbage.write_bytes(b"\xff\xfe\x00garbage{[\x81\n" * 20)
    return World(node, broken, base / "absent", directory, garbage, base / "no-such-dir" / "file.json")


def _filled(command: click.Command, skip: click.Parameter | None) -> list[str]:
    """Plain values for the required parameters other than ``skip``."""
    args: list[str] = []
    for param in command.params:
        if param is skip or not param.required:
            continue
        value = PLAIN if not isinstance(param.type, click.Path) else os.devnull
        if isinstance(param, click.Argument):
            args.append(value)
        else:
            args += [param.opts[0], value]
    return args


def _bad_values(param: click.Parameter, world: World) -> list[tuple[str, str, bool]]:
    """(label, value, certainly wrong) for one parameter, chosen by its type."""
    kind = param.type
    if isinstance(kind, click.Path):
        return [("missing file", str(world.missing_file), True), ("directory", str(world.directory), True),
                ("under a file", str(world.garbage / "file.json"), True), ("garbage file", str(world.garbage), False)]
    if isinstance(kind, click.Choice):
        return [("not a choice", "bogus", True), ("empty choice", "", True)]
    if isinstance(kind, click.types.IntParamType | click.types.FloatParamType):
        found = [("word for a number", "abc", True), ("negative", "-1", False), ("huge", "9" * 30, False),
                 ("zero", "0", False)]
        if isinstance(kind, click.types.FloatParamType):  # no count, timeout or percentage is not a number
            found += [("not a number", "nan", True), ("infinite", "inf", False)]
        return found
    return [("empty", "", False), ("unknown word", "ZZZ", False), ("long path-like", "../" * 2000, False)]


def cases_for(path: tuple[str, ...], command: click.Command, world: World) -> list[Case]:
    cases: list[Case] = []
    if isinstance(command, click.Group):
        for as_json in (False, True):
            cases.append(Case("no subcommand", path, world.node, as_json, True))
            cases.append(Case("unknown subcommand", (*path, "no-such-command"), world.node, as_json, True))
        return cases
    needs_node = path[0] not in WITHOUT_A_NODE
    plain = _filled(command, None)
    for as_json in (False, True):
        cases.append(Case("broken node", (*path, *plain), world.broken, as_json, needs_node))
        if needs_node:  # the others would create a node there, which is no failure
            cases.append(Case("absent node", (*path, *plain), world.absent, as_json, True))
        cases.append(Case("unknown option", (*path, *plain, "--no-such-option"), world.node, as_json, True))
    cases.append(Case("data directory is a file", (*path, *plain), world.garbage, False, True))
    number = 0
    for param in command.params:
        if isinstance(param, click.Option) and (param.is_flag or param.name == "as_json"):
            continue
        for label, value, certain in _bad_values(param, world):
            number += 1
            args = _filled(command, param)
            if isinstance(param, click.Argument):
                args.append(value)
            else:  # --name=value: a value that starts with '-' must not read as an option
                args.append(f"{max(param.opts, key=len)}={value}")
            cases.append(Case(f"{param.name}: {label}", (*path, *args), world.node, number % 2 == 0, certain))
    return cases


def run(case: Case) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KIZUNA_DEBUG": ""}
    env.pop("KIZUNA_DEBUG")
    env.pop("KIZUNA_DATA", None)
    try:  # in a session of its own, so that a command that hangs is stopped together with anything it started
        return run_kizuna(case.argv(), env=env, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case.what}: `kizuna {' '.join(case.args)[:200]}` still ran after {TIMEOUT_S}s")


def problems(case: Case, result: subprocess.CompletedProcess[str]) -> list[str]:
    """How the result breaks the contract (empty: it keeps it)."""
    found: list[str] = []
    out, err = result.stdout, result.stderr
    if "Traceback" in out or "Traceback" in err:
        found.append("a traceback")
    if "internal error" in err or '"code":"internal"' in out.replace(" ", ""):
        found.append("an internal error (an exception the command did not expect)")
    failed = result.returncode != 0
    if case.must_fail and not failed:
        found.append("exit 0 for input that must fail")
    err_lines = err.splitlines()
    if case.as_json:
        try:
            documents = [json.loads(line) for line in out.splitlines() if line.strip()]
        except ValueError:
            documents = []
        if len(documents) != 1 or not isinstance(documents[0], dict):
            found.append("--json output is not exactly one JSON object")
        elif failed:
            body = documents[0].get("error")
            if set(documents[0]) != {"error"} or not isinstance(body, dict) or \
                    set(body) != {"code", "message", "file", "line"}:
                found.append("--json failure is not one {'error': {code, message, file, line}} object")
            if err.strip():
                found.append("--json failure also wrote to stderr")
        elif "error" in documents[0]:
            found.append("--json error object with exit 0")
    elif failed:
        if len(err_lines) != 1:
            found.append(f"{len(err_lines)} lines on stderr instead of one")
        elif not ERROR_LINE.match(err_lines[0]):
            found.append("the stderr line does not start with 'kizuna <command>:'")
    elif any(ERROR_LINE.match(line) for line in err_lines):
        found.append("an error line on stderr with exit 0")
    return found


def refusals(world: World, what: str, args: tuple[str, ...]) -> list[str]:
    """What the command says when it refuses ``args``, in text and under --json, each checked against the contract
    (``problems``): the stderr line, then the JSON error's message."""
    said: list[str] = []
    for as_json in (False, True):
        case = Case(what, args, world.node, as_json, True)
        result = run(case)
        assert problems(case, result) == [], (result.stdout, result.stderr)
        said.append(json.loads(result.stdout)["error"]["message"] if as_json else result.stderr)
    return said


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_bad_input_fails_in_one_line(world: World, path: tuple[str, ...], command: click.Command) -> None:
    cases = cases_for(path, command, world)
    assert cases
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, cases))
    report = [
        f"{case.what}{' --json' if case.as_json else ''}: `kizuna {' '.join(a[:60] for a in case.args)}` -> "
        f"exit {result.returncode}: {'; '.join(found)}\n  stdout: {result.stdout[:300]!r}\n"
        f"  stderr: {result.stderr[:500]!r}"
        for case, result in zip(cases, results, strict=True)
        if (found := problems(case, result))
    ]
    assert not report, "\n".join(report)


def _own_top_level_names() -> list[str]:
    """The first path segments of every path the node serves itself, as its OpenAPI document names them (which
    tests/hostile/test_openapi_routes.py holds to the app's routes): /metrics, /healthz, /openapi.json …"""
    from kizuna.taxii.openapi import openapi_document

    firsts = {path.strip("/").partition("/")[0] for path in openapi_document()["paths"]}
    return sorted(first for first in firsts if first and not first.startswith("{"))


@pytest.mark.parametrize("name", [*_own_top_level_names(), "Console", "METRICS"])
def test_api_root_names_the_node_serves_itself_are_refused_in_one_line(world: World, name: str) -> None:
    # /console/ is the web console and /feeds/ the feeds; an API root there would hide them or be hidden. One
    # named metrics, healthz or openapi.json was accepted: /metrics/ then served TAXII beside /metrics.
    for as_json in (False, True):
        case = Case(f"reserved API root {name}", ("api-roots", "create", name, "--title", "T"), world.node,
                    as_json, True)
        result = run(case)
        assert not problems(case, result), result
        assert "reserved" in (result.stdout if as_json else result.stderr)


def test_hash_commands_name_the_bad_file_and_line(world: World, tmp_path: Path) -> None:
    # Inputs that are wrong only inside the file: a hash of the wrong length, a corrupt image.
    short_hash = tmp_path / "short.txt"
    short_hash.write_text("f8f8f0cee0f4a84f\n")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    cases = [("hashes", "import", str(short_hash), "--collection", PLAIN), ("hash", str(corrupt)),
             ("hashes", "match", str(corrupt))]
    for args in cases:
        for as_json in (False, True):
            case = Case("bad hash input", args, world.node, as_json, True)
            result = run(case)
            assert not problems(case, result), result
            where = str(short_hash) if "import" in args else str(corrupt)
            assert where in (result.stdout if as_json else result.stderr)


@pytest.mark.parametrize("setting,line,expected", [
    ("[server]\ndefault_page_size = 0\n", 4, "[server] default_page_size must be a whole number, 1 or more, not 0"),
    ('[metrics]\naccess = "everyone"\n', 4, "[metrics] access must be one of loopback, token, not 'everyone'"),
], ids=["page size", "metrics access"])
def test_a_bad_setting_in_kizuna_toml_is_named_with_its_line_by_every_command(tmp_path: Path, setting: str,
                                                                              line: int, expected: str) -> None:
    node = tmp_path / "node"
    kizuna_json(node, "init", "--org-name", "Home", "--country", "GBR")
    toml = node / "kizuna.toml"
    store = next(each for each in toml.read_text().splitlines() if each.startswith("store"))
    toml.write_text(f"# Kizuna node configuration\n{store}\n{setting}")
    commands = {"status": ("status",), "backup": ("backup", str(tmp_path / "copy")),
                "metrics show": ("metrics", "show"), "objects list": ("objects", "list", "--collection", "x")}
    for name, args in commands.items():
        for as_json in (False, True):
            case = Case("bad setting", args, node, as_json, True)
            result = run(case)
            assert problems(case, result) == [], (args, result.stdout, result.stderr)
            if as_json:
                error = json.loads(result.stdout)["error"]
                assert (error["message"], error["file"], error["line"]) == (expected, str(toml), line), error
            else:
                assert result.stderr == f"kizuna {name}: {expected}: {toml}:{line}\n", result.stderr
    assert not (tmp_path / "copy").exists()


def test_the_walk_finds_every_command_group_and_leaf() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    # A sample the walk must find; new commands are covered by the walk, not by this list.
    assert {"init", "import", "export", "tokens create", "audit export", "policy options", "demo"} <= names
    assert len(LEAVES) >= 30


#: ``partners add`` with a MISP feed: (what the one line must say, the words after ``partners add``).
MISP_FEED_REFUSALS = [
    ("either --url", ("F", "--url", "https://p.example/main/", "--misp-feed", "https://f.example/feed/",
                      "--collection", PLAIN)),
    ("either --url", ("F", "--collection", PLAIN)),
    ("needs --collection", ("F", "--misp-feed", "https://f.example/feed/")),
    ("no collection 'nope'", ("F", "--misp-feed", "https://f.example/feed/", "--collection", "nope")),
    ("must be an http://, https:// or file://", ("F", "--misp-feed", "ftp://f.example/feed/", "--collection", PLAIN)),
    ("has no host", ("F", "--misp-feed", "https:///feed/", "--collection", PLAIN)),
    ("not a valid URL", ("F", "--misp-feed", "https://f.example:port/feed/", "--collection", PLAIN)),
    ("not in the URL", ("F", "--misp-feed", "https://u:p@f.example/feed/", "--collection", PLAIN)),
    ("no directory with a manifest.json", ("F", "--misp-feed", "/no/such/feed", "--collection", PLAIN)),
    ("must name a local path", ("F", "--misp-feed", "file://elsewhere/feed", "--collection", PLAIN)),
    ("--ca needs an https:// URL", ("F", "--misp-feed", "http://f.example/feed/", "--collection", PLAIN,
                                    "--ca", os.devnull)),
    ("apply to TAXII partners", ("F", "--misp-feed", "https://f.example/feed/", "--collection", PLAIN,
                                 "--map", f"{PLAIN}=r")),
    ("applies to --misp-feed", ("F", "--url", "https://p.example/main/", "--map", f"{PLAIN}=r",
                                "--collection", PLAIN)),
    ("needs at least one --map", ("F", "--url", "https://p.example/main/")),
    # configurations that could never work, refused when added instead of failing at the first sync
    ("discovery URL", ("F", "--url", "https://p.example/taxii2/", "--map", f"{PLAIN}=r")),
    ("more than once", ("F", "--url", "https://p.example/main/", "--map", f"{PLAIN}=r", "--map", f"{PLAIN}=r")),
    ("wrapped in quotes", ("F", "--url", "https://p.example/main/", "--map", f"{PLAIN}=r", "--token", '"kz_a_b"')),
]


@pytest.mark.parametrize("expected,args", MISP_FEED_REFUSALS, ids=[e for e, _ in MISP_FEED_REFUSALS])
def test_partners_add_refuses_a_misp_feed_it_cannot_use(world: World, expected: str, args: tuple[str, ...]) -> None:
    for said in refusals(world, f"partners add {expected}", ("partners", "add", *args)):
        assert expected in said
    assert "F" not in [p["name"] for p in kizuna_json(world.node, "partners", "list")["partners"]]


#: A name the node does not have, or an empty one, where an action would otherwise quietly do nothing (or all):
#: (what the one line must say, the words after ``kizuna``).
NAMED_BUT_MISSING = [
    # a partner under an agreement that does not exist would receive nothing (the policy fails closed)
    ("no agreement 'nope'", ("partners", "add", "G", "--url", "https://p.example/main/", "--map", f"{PLAIN}=r",
                             "--token", "t", "--agreement", "nope")),
    # the node's own organisation reads unfiltered: a push to a partner entry under it would send everything
    ("'Home' is this node's own organisation", ("partners", "add", "G", "--url", "https://p.example/main/", "--map",
                                                f"{PLAIN}=r", "--token", "t", "--org", "Home")),
    ("an agreement needs a name", ("agreements", "set", "", "--partner", PLAIN, "--max-tlp", "amber")),
    ("no partner 'NOPE'", ("search", "ransomware", "--partner", "NOPE")),  # not "Nothing found"
    ("no partner ''", ("sync", "")),  # not a sync of every partner
    ("not an empty value", ("objects", "list", "--collection", PLAIN, "--type", "")),  # not every type
    ("no such record kind 'wirte'", ("audit", "export", "--kind", "wirte")),  # not an empty export
    # not the old value kept, as if the change were made
    ("--producers needs at least one value", ("agreements", "set", "a1", "--partner", PLAIN, "--producers", "")),
    ("--collections needs at least one value", ("agreements", "set", "a1", "--partner", PLAIN, "--collections", ",")),
    # a blank row in listings and `r:` in tokens list, not a collection or API root someone can name
    ("the title is empty", ("collections", "create", "--title", " ")),
    ("the title is empty", ("api-roots", "create", "blank", "--title", "")),
    ("is a path step", ("api-roots", "create", "..", "--title", "Up")),
    # not "Nothing found": as `objects list --type` and `--tlp` of the other commands refuse them
    ("'Malware' is not a STIX type name", ("search", "ransomware", "--type", "Malware")),
    ("'TLP:AMBER' is not one of", ("search", "ransomware", "--tlp", "TLP:AMBER")),
    ("--label is empty", ("import", os.devnull, "--collection", PLAIN, "--label", " ")),  # not labels: [" "]
    # not a pull mapping, nor credentials of nobody, taken as given
    ("direction must be pull, push or both", ("partners", "add", "G", "--url", "https://p.example/main/", "--map",
                                              f"{PLAIN}=r:", "--token", "t")),
    ("neither the user nor the password empty", ("partners", "add", "G", "--url", "https://p.example/main/",
                                                 "--map", f"{PLAIN}=r", "--basic", ":")),
    # an agreement with a partner entry that no partner can ever be named
    ("--partner node:: partner name '' must be", ("agreements", "set", "a2", "--partner", "node:")),
    ("partner name '名前' must be", ("agreements", "set", "a2", "--partner", "node:名前")),
    # not an organisation that is its own client, nor one whose communities an empty name empties
    ("cannot be a client of itself", ("policy", "org", PLAIN, "--client-of", PLAIN)),
    ("--community needs at least one value", ("policy", "org", PLAIN, "--community", "")),
]


@pytest.mark.parametrize("expected,args", NAMED_BUT_MISSING, ids=[e for e, _ in NAMED_BUT_MISSING])
def test_a_missing_or_empty_name_is_refused(world: World, expected: str, args: tuple[str, ...]) -> None:
    for said in refusals(world, expected, args):
        assert expected in said
    assert "G" not in [p["name"] for p in kizuna_json(world.node, "partners", "list")["partners"]]
    assert "a2" not in [a["id"] for a in kizuna_json(world.node, "agreements", "list")["agreements"]]
    grouped = kizuna_json(world.node, "policy", "org", PLAIN)
    assert grouped["organisation"] not in grouped["client_of"], grouped  # never its own client


#: Numbers a command would take to its end before they break it (a lease that expires in 1e12 s no longer fits
#: the store, a wait of 1e12 s no longer fits a thread's timeout): usage errors, however few partners there are.
OUT_OF_RANGE = [
    ("sync", "--lease-ttl", "99999999999999999999"),
    ("sync", "--lease-ttl", "1e300"),
    ("sync", "--lease-ttl", "1e12"),
    ("sync", "--loop", "--tick", "1e12"),
]


@pytest.mark.parametrize("args", OUT_OF_RANGE, ids=[" ".join(a) for a in OUT_OF_RANGE])
def test_a_number_out_of_its_range_is_a_usage_error(world: World, args: tuple[str, ...]) -> None:
    for as_json in (False, True):
        case = Case("out of range", args, world.node, as_json, True)
        result = run(case)
        assert problems(case, result) == [] and result.returncode == 2, (result.stdout, result.stderr)
        said = json.loads(result.stdout)["error"]["message"] if as_json else result.stderr
        assert "is not in the range" in said, said


def test_a_preview_of_an_object_that_could_not_be_stored_is_refused(world: World) -> None:
    draft = world.node.parent / "draft-without-id.json"
    draft.write_text('{"type": "indicator", "spec_version": "2.1", "pattern_type": "stix"}')
    valid = world.node.parent / "draft-note.json"
    valid.write_text('{"type": "note", "spec_version": "2.1", "id": "note--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061", '
                     '"created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z", "content": "x", '
                     '"object_refs": ["note--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061"]}')
    for as_json in (False, True):
        case = Case("invalid draft", ("preview", str(draft), "--collection", PLAIN), world.node, as_json, True)
        result = run(case)
        assert problems(case, result) == [], (result.stdout, result.stderr)
        said = json.loads(result.stdout)["error"]["message"] if as_json else result.stderr
        assert "could not be stored" in said and "'id' is missing" in said
        missing = run(Case("no collection", ("preview", str(valid), "--collection", "nope"), world.node, as_json, True))
        said = json.loads(missing.stdout)["error"]["message"] if as_json else missing.stderr
        assert "no collection 'nope'" in said, said


def test_malformed_interchange_files_fail_in_one_line(world: World) -> None:
    """What the walk cannot guess: files that look like a format but are broken, and bad sources."""
    base = world.node.parent / "interchange"  # not world.directory: other cases need it empty
    base.mkdir(exist_ok=True)
    misp = base / "broken-event.json"
    misp.write_text('{"Event": {"info": "x", "Attribute": [{"type": "domain", "value": "a.example.net", '
                    '"uuid": "not-a-uuid"}]}}')
    xml = base / "broken.xml"
    xml.write_text('<stix:STIX_Package xmlns:stix="http://stix.mitre.org/stix-1">\n<open>\n</stix:STIX_Package>\n')
    not_stix_xml = base / "other.xml"
    not_stix_xml.write_text("<html><body>not STIX</body></html>\n")
    csv = base / "binary.csv"
    csv.write_bytes(b"type,value\ndomain,\xff\xfe\x80\n")
    cases = [
        Case("broken MISP event", ("import", str(misp), "--collection", PLAIN), world.node, as_json, True)
        for as_json in (False, True)
    ] + [
        Case("broken STIX 1.x XML", ("import", str(xml), "--collection", PLAIN), world.node, True, True),
        Case("XML that is not STIX", ("import", str(not_stix_xml), "--collection", PLAIN), world.node, False, True),
        Case("CSV that is not UTF-8", ("import", str(csv), "--collection", PLAIN), world.node, False, True),
        Case("CSV forced as MISP", ("import", str(csv), "--collection", PLAIN, "--format", "misp"), world.node,
             True, True),
        Case("unreachable URL", ("import", "http://127.0.0.1:9/feed.csv", "--collection", PLAIN), world.node,
             False, True),
        Case("URL with a broken authority", ("import", "http://[::1", "--collection", PLAIN), world.node, True, True),
        Case("unknown warninglist", ("import", str(misp), "--collection", PLAIN, "--warninglist", "ZZZ"),
             world.node, True, True),
        Case("misp-feed without a directory", ("export", "--collection", PLAIN, "--format", "misp-feed"),
             world.node, False, True),
        Case("export as an unknown organisation", ("export", "--collection", PLAIN, "--as-org", "no-such-org-b7e1"),
             world.node, False, True),
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, cases))
    report = [f"{case.what}: exit {result.returncode}: {'; '.join(found)}\n  stdout: {result.stdout[:300]!r}\n"
              f"  stderr: {result.stderr[:300]!r}"
              for case, result in zip(cases, results, strict=True) if (found := problems(case, result))]
    assert not report, "\n".join(report)


def test_the_operator_right_is_refused_to_a_partners_token_in_one_line(world: World) -> None:
    """Only the node's own organisation operates it: a partner's token never gets the operator right."""
    partner = kizuna_json(world.node, "tokens", "create", "--org", PLAIN, "--read", PLAIN)["id"]
    for said in refusals(world, "operator right for a partner", ("tokens", "operator", partner)):
        assert "another organisation" in said
    listed = {t["id"]: t for t in kizuna_json(world.node, "tokens", "list")["tokens"]}
    assert listed[partner]["operator"] is False


def test_the_operator_right_is_refused_to_a_revoked_token_as_the_metrics_right_is(world: World) -> None:
    """`tokens operator` granted the right to a revoked token, where `metrics grant` refused it: one check, both."""
    own = kizuna_json(world.node, "tokens", "create", "--org", "Home", "--read", PLAIN)["id"]
    kizuna_json(world.node, "tokens", "revoke", own)
    for args, use in ((("tokens", "operator", own), "operate the node"), (("metrics", "grant", own), "read /metrics")):
        for said in refusals(world, f"{args[0]} for a revoked token", args):
            assert f"token {own} is revoked: it cannot sign in to {use}" in said, said
    listed = {t["id"]: t for t in kizuna_json(world.node, "tokens", "list")["tokens"]}
    assert listed[own]["operator"] is False and listed[own]["state"] == "revoked"
    # Withdrawing stays possible, whatever the token's state.
    assert kizuna_json(world.node, "tokens", "operator", own, "--withdraw")["changed"] is False


def test_names_an_operator_would_read_as_one_are_refused(world: World) -> None:
    """Two partners or organisations whose names differ only in case or padding read as one in every list."""
    kizuna_json(world.node, "partners", "add", "Case-Partner", "--url", "https://p.example/main/",
                "--map", f"{PLAIN}=r", "--token", "t", "--org", PLAIN)
    alike = [
        ("differ only in case", ("partners", "add", "case-partner", "--url", "https://q.example/main/",
                                 "--map", f"{PLAIN}=r", "--token", "t")),
        ("differ only in case", ("orgs", "create", PLAIN.upper(), "--country", "JPN")),
        ("may not start or end with spaces", ("orgs", "create", f" {PLAIN}-padded ", "--country", "JPN")),
        # an agreement with the partner entry named in another case would bind no partner entry, ever
        ("the partner entry is 'Case-Partner'", ("agreements", "set", "a3", "--partner", "node:case-partner")),
    ]
    for expected, args in alike:
        for said in refusals(world, expected, args):
            assert expected in said, said
    listed = kizuna_json(world.node, "partners", "list")["partners"]
    assert [p["name"] for p in listed].count("case-partner") == 0
    # listings name the partner's organisation, not only its identity id
    assert [(p["organisation_name"], p["organisation"].startswith("identity--")) for p in listed
            if p["name"] == "Case-Partner"] == [(PLAIN, True)]
    kizuna_json(world.node, "partners", "remove", "Case-Partner")
    assert all(o["name"] != PLAIN.upper() for o in kizuna_json(world.node, "orgs", "list")["organisations"])


#: Names and labels that would break a listing over two lines (or run on for pages): one rule, in the core, for
#: every command that takes one (and for the console's token form: tests/web/test_operator_pages.py).
OUT_OF_LINE = [
    ("an organisation's name may not hold a control character such as a line break (U+000A in 'x\\ny')",
     ("orgs", "create", "x\ny", "--country", "JPN")),
    ("the label may not hold a control character", ("tokens", "create", "--org", PLAIN, "--read", PLAIN,
                                                    "--label", "a\nb")),
    ("the label is 5,000 characters long; it may be at most 200", ("tokens", "create", "--org", PLAIN, "--read",
                                                                  PLAIN, "--label", "x" * 5000)),
    ("the label may not hold a control character", ("metrics", "token", "--org", PLAIN, "--label", "m\r")),
    ("the title may not hold a control character", ("collections", "create", "--title", "T\tx")),
    ("the title may not hold a control character", ("api-roots", "create", "tabbed", "--title", "T\x1bx")),
    ("an agreement's name may not hold a control character", ("agreements", "set", "a\nb", "--partner", PLAIN)),
    ("an operation's name may not hold a control character", ("ops", "create", "op\nx", "--from", "2099-01-01",
                                                              "--to", "2099-01-02", "--partner", PLAIN)),
    ("an operation's name is 191 characters long; it may be at most 190",  # its tokens' label: "operation NAME"
     ("ops", "create", "o" * 191, "--from", "2099-01-01", "--to", "2099-01-02", "--partner", PLAIN)),
]


#: Operations whose partner tokens would outlive the five years a token may last: named by the options given, as
#: `ops create` has no --expires.
TOO_LONG_OPERATIONS = [
    ("--to 2031-12-31 with --grace-days 7 makes the partner tokens work until 2032-01-08, more than 5 years",
     ("ops", "create", "L", "--from", "2027-01-01", "--to", "2031-12-31", "--partner", PLAIN)),
    ("--to 2027-01-02 with --grace-days 100000 makes the partner tokens work until",
     ("ops", "create", "L", "--from", "2027-01-01", "--to", "2027-01-02", "--grace-days", "100000",
      "--partner", PLAIN)),
]


@pytest.mark.parametrize("expected,args", TOO_LONG_OPERATIONS, ids=["--to", "--grace-days"])
def test_an_operation_outliving_the_longest_token_names_its_own_options(world: World, expected: str,
                                                                       args: tuple[str, ...]) -> None:
    for said in refusals(world, "too long an operation", args):
        assert expected in said and "--expires" not in said, said
    assert "l" not in [o["slug"] for o in kizuna_json(world.node, "ops", "list")["operations"]]


@pytest.mark.parametrize("expected,args", OUT_OF_LINE, ids=[" ".join(a[:2]) + ": " + e[:30] for e, a in OUT_OF_LINE])
def test_a_name_or_label_that_is_not_one_line_is_refused(world: World, expected: str,
                                                         args: tuple[str, ...]) -> None:
    for said in refusals(world, expected, args):
        assert expected in said, said
    tokens = kizuna_json(world.node, "tokens", "list")["tokens"]
    assert not [t for t in tokens if t["label"] and (len(t["label"]) > 200 or not t["label"].isprintable())]
    assert not [o for o in kizuna_json(world.node, "orgs", "list")["organisations"] if "\n" in o["name"]]
    assert not [c for c in kizuna_json(world.node, "collections", "list")["collections"] if "\t" in c["title"]]


def test_names_in_any_script_and_labels_up_to_200_characters_are_kept(world: World) -> None:
    """The rule is about lines, not scripts: Japanese names, with their ideographic space, are names."""
    org = kizuna_json(world.node, "orgs", "create", "東京 2027　SOC", "--country", "JPN")
    assert org["name"] == "東京 2027　SOC"
    for label in ("監視チーム　夜間", "ラ" * 200):
        created = kizuna_json(world.node, "tokens", "create", "--org", "東京 2027　SOC", "--read", PLAIN,
                              "--label", label)
        listed = {t["id"]: t for t in kizuna_json(world.node, "tokens", "list")["tokens"]}
        assert listed[created["id"]]["label"] == label
    assert kizuna_json(world.node, "collections", "create", "--title", "共有 インテリジェンス")["title"] == \
        "共有 インテリジェンス"


@pytest.mark.parametrize("args", [
    ("policy", "options", "--admins-see-everything", "--admins-see-as-organisation"),
    ("policy", "options", "--own-organisation-sees-as-partner", "--own-organisation-sees-everything"),
    ("agreements", "set", "a1", "--partner", PLAIN, "--amber-to-clients", "--no-amber-to-clients"),
], ids=["admins", "own-organisation", "amber-to-clients"])
def test_both_forms_of_an_on_off_option_are_refused(world: World, args: tuple[str, ...]) -> None:
    """The last of the two used to win without a word: who sees everything was decided by the order typed."""
    before = kizuna_json(world.node, "policy", "options")
    for said in refusals(world, "contradict each other", args):
        assert "contradict each other" in said
    assert kizuna_json(world.node, "policy", "options") == before
    assert "a1" not in [a["id"] for a in kizuna_json(world.node, "agreements", "list")["agreements"]]


def test_a_whole_token_given_for_a_token_id_is_refused_without_repeating_its_secret(world: World) -> None:
    """Every option or argument that takes a token id: a pasted ``kz_<id>_<secret>`` is refused, named by its id,
    and its secret is never written back (a terminal's scrollback, a CI log)."""
    from kizuna.cli.common import TokenId

    whole = "kz_0123456789abcdef_SeCrEtPaRtOfTheToken"
    taking = [(path, param) for path, command in walk(cli) for param in command.params
              if isinstance(param.type, TokenId)]
    assert len(taking) >= 10  # tokens revoke/rotate/…, metrics grant/revoke, the --as-token-id options
    for path, param in taking:
        command = dict(walk(cli))[path]
        words = [whole if each is param else PLAIN for each in command.params
                 if isinstance(each, click.Argument) and (each.required or each is param)]
        if not isinstance(param, click.Argument):
            words += [*_filled(command, None)[len(words):], param.opts[0], whole]
        else:
            words += [word for each in command.params if not isinstance(each, click.Argument) and each.required
                      for word in (each.opts[0], PLAIN)]
        for as_json in (False, True):
            case = Case("whole token", (*path, *words), world.node, as_json, True)
            result = run(case)
            assert problems(case, result) == [], (path, result.stdout, result.stderr)
            said = result.stdout + result.stderr
            assert "SeCrEt" not in said and "'0123456789abcdef'" in said, (path, said)


def test_match_refuses_an_output_that_is_an_input_or_another_output(world: World, tmp_path: Path) -> None:
    """`match … self.log -o self.log` replaced the log with the sightings bundle, and `-o x --alerts x` wrote one
    output over the other; both are refused before anything is read, through a link as well."""
    examples = Path(__file__).resolve().parents[2] / "examples" / "zeek"
    log, intel = tmp_path / "self.log", tmp_path / "intel.json"
    log.write_bytes((examples / "dns.log").read_bytes())
    intel.write_bytes((examples / "demo-indicators.json").read_bytes())
    link = tmp_path / "link.log"
    link.symlink_to(log)
    before = log.read_bytes(), intel.read_bytes()
    match = ("match", "--indicators", str(intel), str(log))
    for args, expected in [((*match, "-o", str(log)), "replace what it reads"),
                           ((*match, "--alerts", str(link)), "replace what it reads"),
                           ((*match, "-o", str(intel)), "replace what it reads"),
                           ((*match, "-o", str(tmp_path / "x.json"), "--alerts", str(tmp_path / "x.json")),
                            "name the same file")]:
        for said in refusals(world, "output is an input", args):
            assert expected in said, said
    assert (log.read_bytes(), intel.read_bytes()) == before and not (tmp_path / "x.json").exists()


def test_match_writes_dash_to_standard_output_and_refuses_two_outputs_there(world: World, tmp_path: Path) -> None:
    """`-o -` wrote a file named `-` while `--alerts -` meant standard output, and `--alerts - --json` mixed
    alert lines with the summary: `-` is standard output for both, and only one output may go there."""
    examples = Path(__file__).resolve().parents[2] / "examples" / "zeek"
    match = ("match", "--indicators", str(examples / "demo-indicators.json"), str(examples / "dns.log"))
    for said in refusals(world, "two outputs on standard output", (*match, "-o", "-", "--alerts", "-")):
        assert "-o - and --alerts - both write to standard output" in said
    for option in ("-o", "--alerts"):  # beside --json's summary
        case = Case("an output beside the summary", (*match, option, "-"), world.node, True, True)
        result = run(case)
        assert problems(case, result) == [], (result.stdout, result.stderr)
        assert f"give {option} a file" in json.loads(result.stdout)["error"]["message"]
    written = subprocess.run([sys.executable, "-m", "kizuna", "--data", str(world.node), *match, "-o", "-",
                              "--collection", PLAIN, "-q"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert written.returncode == 0, written.stderr
    assert json.loads(written.stdout)["type"] == "bundle" and not (tmp_path / "-").exists()
