"""The Games day of ``kizuna demo --games`` played by three real nodes that federate over TAXII.

Three ``kizuna serve`` processes on loopback ports, each with its own data directory: the host
nation's CSIRT (which runs the operation), a visiting nation's CERT and the organising committee's
SOC. Every step is the ordinary ``kizuna`` command a person would type, run against the node's own
directory, so the demo shows the real commands, tokens, agreements and federation:

1. the host creates the operation (a token and an agreement per partner) and its protected assets; the
   SOC is recorded as a client of the host (TLP:AMBER the host receives may reach its clients only);
2. each partner node records the host as a partner (organisation, agreement, ``partners add`` with
   the token the host issued);
3. the visiting nation imports its phishing indicator on a lookalike of the ticketing domain and
   pushes it to the host (``kizuna sync``);
4. the SOC pulls the operation's intel, runs its DNS log through ``kizuna match`` (a sighting of the
   indicator) and pushes the sighting to the host;
5. the host lists the alerts, opens an incident linking what it received, confirms the lookalike in
   its own DNS log (its sighting), which the SOC pulls back, sends both sightings back to the visiting
   nation whose indicator they sight (sightings flow-back), and writes the shift report in English
   and Japanese.

Then the three nodes serve until Ctrl-C (or SIGTERM), which stops every process it started.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from kizuna.cli.common import CliError, check_port_free, terminate_as_interrupt
from kizuna.ops.games import NAME, SLUG, TICKETS
from kizuna.ops.lookalikes import lookalikes_of
from kizuna.policy.tlp import TlpLevel, oasis_id

#: How long a server may take to accept connections (process start on a loaded machine).
START_TIMEOUT_S = 60.0
#: How long a stopping server may take (serve bounds its own HTTP shutdown at 5 s).
STOP_TIMEOUT_S = 60.0


@dataclass
class GamesNode:
    """One node of the demo: its role, organisation, directory, port and, once started, its process."""

    role: str
    org: str
    country: str
    data_dir: Path
    port: int
    identity: dict[str, Any] = field(default_factory=dict)
    token: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    """A loopback port nothing listens on now (the kernel's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class GamesDay:
    """Sets up and plays the Games day across three node directories under ``base``."""

    def __init__(self, base: Path, ports: dict[str, int], say: Callable[[str], None]) -> None:
        self.say = say
        self.host = GamesNode("host", "Host nation CSIRT", "JPN", base / "host", ports["host"])
        self.visitor = GamesNode("visitor", "Visiting nation CERT", "GBR", base / "visitor", ports["visitor"])
        self.soc = GamesNode("soc", "Games Organising Committee SOC", "JPN", base / "soc", ports["soc"])
        self.nodes = (self.host, self.visitor, self.soc)
        self.lookalike = sorted(d for d, fuzzer in lookalikes_of(TICKETS).items() if fuzzer == "homoglyph")[0]
        self.played: dict[str, Any] = {}

    # -- running the real commands -------------------------------------------------------------------------

    def kizuna(self, node: GamesNode, *args: str) -> Any:
        """Run ``kizuna --data <node> ARGS --json`` and return its JSON answer; a failure stops the demo."""
        done = subprocess.run([sys.executable, "-m", "kizuna", "--data", str(node.data_dir), *args, "--json"],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            try:
                reason = str(json.loads(done.stdout)["error"]["message"])
            except (ValueError, KeyError, TypeError):
                reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise CliError(f"the {node.role} node's `kizuna {' '.join(args[:2])}` failed: {reason}", code="games")
        return json.loads(done.stdout) if done.stdout.strip() else {}

    def start(self, node: GamesNode) -> None:
        # Checked again now: the ports were free when the demo began, but another process may have taken one
        # since, and this demo would then take that process's server for its own node's.
        check_port_free("127.0.0.1", node.port)
        log = (node.data_dir / "serve.log").open("ab")
        node.process = subprocess.Popen(
            [sys.executable, "-m", "kizuna", "--data", str(node.data_dir), "serve", "--host", "127.0.0.1",
             "--port", str(node.port), "--no-sync"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True,  # Ctrl-C reaches the demo only, which then stops each server once
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if node.process.poll() is not None:
                raise CliError(f"the {node.role} node's server exited ({node.process.returncode}); "
                               f"see {node.data_dir / 'serve.log'}", code="games")
            try:
                with socket.create_connection(("127.0.0.1", node.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)  # waiting for the server to listen, bounded by the deadline
        raise CliError(f"the {node.role} node did not listen on port {node.port} within {START_TIMEOUT_S:.0f} s",
                       code="games")

    def stop(self) -> None:
        """Stop every server this demo started and wait for each (no process is left behind)."""
        running = [n.process for n in self.nodes if n.process is not None and n.process.poll() is None]
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # -- the day ---------------------------------------------------------------------------------------------

    def set_up(self) -> None:
        today = dt.datetime.now(dt.UTC).date()
        for node in self.nodes:
            node.identity = self.kizuna(node, "init", "--org-name", node.org, "--country", node.country,
                                        "--title", f"{node.org} (Games demo)")["identity"]
        self.say("  three nodes initialised; the host creates the operation")
        for partner in (self.soc, self.visitor):
            self.kizuna(self.host, "orgs", "create", partner.org, "--country", partner.country,
                        "--identity-id", partner.identity["id"])
        # The organising committee's SOC is a client of the host nation's CSIRT: TLP:AMBER the visiting nation
        # sends the host may go on to it (TLP 2.0), and to no partner that is not a client.
        self.kizuna(self.host, "policy", "org", self.soc.org, "--client-of", self.host.org)
        created = self.kizuna(self.host, "ops", "create", NAME, "--from", str(today - dt.timedelta(days=1)),
                              "--to", str(today + dt.timedelta(days=14)), "--partner", self.soc.org,
                              "--partner", self.visitor.org, "--tlp-default", "amber")
        operation = created["operation"]
        self.played["collections"] = {role: c["id"] for role, c in operation["collections"].items()}
        self.played["partner_tokens"] = {t["org"]: t["token"] for t in created["tokens"]}
        self.kizuna(self.host, "ops", "assets", "add", SLUG, "--domain", "games2027.example", "--domain", TICKETS,
                    "--cidr", "198.51.100.0/24", "--url", f"https://{TICKETS}/buy",
                    "--identity", "Games Chief Executive")
        roles = ("intel", "incidents", "watchlist")
        host_token = self.kizuna(self.host, "tokens", "create", "--org", self.host.org, "--label", "games-demo",
                                 *[f"--read={SLUG}-{r}" for r in roles], f"--write={SLUG}-intel",
                                 f"--write={SLUG}-incidents")
        self.kizuna(self.host, "tokens", "operator", host_token["id"])
        self.host.token = host_token["token"]
        agreements = {p["organisation"]: p["agreement"] for p in operation["partners"]}
        for partner, direction in ((self.visitor, "push"), (self.soc, "both")):
            # The partner's side: the host as an organisation (under its own identity), an agreement
            # releasing the shared collection to it, and the host's TAXII server as a partner.
            games = self.kizuna(partner, "collections", "create", "--title", f"{NAME} shared", "--alias", "games")
            self.kizuna(partner, "orgs", "create", self.host.org, "--country", self.host.country,
                        "--identity-id", self.host.identity["id"])
            self.kizuna(partner, "agreements", "set", "games-host", "--partner", self.host.org,
                        "--collections", "games", "--producers", "*", "--max-tlp", "amber")
            self.kizuna(partner, "partners", "add", "host", "--url", f"{self.host.url}/main/",
                        "--map", f"games={operation['collections']['intel']['id']}:{direction}",
                        "--token", self.played["partner_tokens"][partner.org], "--org", self.host.org,
                        "--agreement", "games-host")
            partner.token = self.kizuna(partner, "tokens", "create", "--org", partner.org, "--read", "games",
                                        "--write", "games", "--label", "games-demo")["token"]
            # The host's side: it also reads the partner's shared collection, so its sync health (console
            # board, shift report) follows each partner node. The visiting nation, which has no DNS logs
            # at the Games, also lets the host write: sightings of its indicator flow back to it.
            back = partner is self.visitor
            for_host = self.kizuna(partner, "tokens", "create", "--org", self.host.org, "--read", "games",
                                   *(["--write", "games"] if back else []), "--agreement", "games-host",
                                   "--label", "games-host")["token"]
            if back:
                self.kizuna(self.host, "agreements", "set", agreements[partner.org], "--sightings-flow-back")
            self.kizuna(self.host, "partners", "add", partner.role, "--url", f"{partner.url}/main/",
                        "--map", f"{SLUG}-intel={games['id']}:{'both' if back else 'pull'}", "--token", for_host,
                        "--org", partner.org, "--agreement", agreements[partner.org])

    def play(self) -> None:
        amber = oasis_id(TlpLevel.AMBER)
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        phishing = {
            "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": now,
            "modified": now, "valid_from": now, "name": f"Ticket phishing on {self.lookalike}",
            "description": "Phishing mail sends visitors to a copy of the ticketing site.",
            "indicator_types": ["malicious-activity"], "pattern_type": "stix",
            "pattern": f"[domain-name:value = '{self.lookalike}']",
            "created_by_ref": self.visitor.identity["id"], "object_marking_refs": [amber],
        }
        bundle = self.visitor.data_dir / "phishing.json"
        bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
                                      "objects": [self.visitor.identity, phishing]}))
        self.kizuna(self.visitor, "import", str(bundle), "--collection", "games")
        self.kizuna(self.visitor, "sync", "host", "--quiet")
        self.say(f"  the visiting nation pushed its phishing indicator on {self.lookalike} to the host")
        self.kizuna(self.soc, "sync", "host", "--quiet")
        soc_hit = self.kizuna(self.soc, "match", "--from-collection", "games", "--collection", "games",
                              str(self._dns_log(self.soc, "10.20.0.15")), "--quiet")
        self.kizuna(self.soc, "sync", "host", "--quiet")
        self.say(f"  the SOC matched its DNS log (hits: {soc_hit.get('hits', 0)}) and pushed its sighting to the host")
        self.kizuna(self.host, "sync", "--quiet")
        intel = f"{SLUG}-intel"
        alerts = self.kizuna(self.host, "ops", "alerts", SLUG)["alerts"]
        incident = self.kizuna(self.host, "ops", "incident", "add", SLUG, "--name",
                               "Phishing wave on a ticketing lookalike", "--description",
                               f"Visitors receive mail linking to {self.lookalike}, a copy of the ticketing site.",
                               "--assign", self.soc.org, "--determination", "successful-attempt")
        self.kizuna(self.host, "ops", "incident", "update", SLUG, incident["id"], "--status", "investigating")
        self.kizuna(self.host, "match", "--from-collection", intel, "--collection", intel,
                    str(self._dns_log(self.host, "192.0.2.44")), "--quiet")
        received = sorted({a["object_id"] for a in alerts if a["object_type"] in ("indicator", "sighting")})
        self.kizuna(self.host, "ops", "incident", "link", SLUG, incident["id"], *received)
        self.kizuna(self.host, "sync", "--quiet")
        self.kizuna(self.soc, "sync", "host", "--quiet")
        self.say("  the host raised the alerts, opened an incident and sent the sightings back (its own to the "
                 "SOC, both to the visiting nation)")
        reports = {lang: self.kizuna(self.host, "ops", "report", SLUG, "--since", "1h", "--lang", lang,
                                     "-o", str(self.host.data_dir / f"shift-report-{lang}.md"))
                   for lang in ("en", "ja")}
        self.played.update({"alerts": len(self.kizuna(self.host, "ops", "alerts", SLUG)["alerts"]),
                            "incident": incident["id"], "lookalike": self.lookalike, "phishing": phishing["id"],
                            "reports": {lang: str(self.host.data_dir / f"shift-report-{lang}.md")
                                        for lang in reports}})

    def _dns_log(self, node: GamesNode, client: str) -> Path:
        """A Zeek DNS log (JSON) with one query of the lookalike from ``client``."""
        path = node.data_dir / "dns.log"
        line = {"ts": time.time(), "uid": f"C{uuid.uuid4().hex[:16]}", "id.orig_h": client, "id.orig_p": 53000,
                "id.resp_h": "10.0.0.53", "id.resp_p": 53, "proto": "udp", "query": self.lookalike,
                "qtype_name": "A", "rcode_name": "NOERROR"}
        path.write_text(json.dumps(line) + "\n")
        return path

    def summary(self) -> dict[str, Any]:
        nodes = {n.role: {"organisation": n.org, "identity": n.identity.get("id"), "data_dir": str(n.data_dir),
                          "taxii_url": f"{n.url}/taxii2/",
                          "console_url": f"{n.url}/console/", "token": n.token,
                          "pid": n.process.pid if n.process else None} for n in self.nodes}
        nodes["host"]["operation_url"] = f"{self.host.url}/console/operations/{SLUG}"
        return {"operation": NAME, "slug": SLUG, "nodes": nodes, **self.played}


def summary_lines(info: dict[str, Any]) -> list[str]:
    lines = [f"Games day {info['operation']!r}: {info['alerts']} alerts on protected assets, incident "
             f"{info['incident']}, shift reports {info['reports']['en']} and {info['reports']['ja']}"]
    for role, node in info["nodes"].items():
        lines += [f"  {role:<8} {node['organisation']}  ({node['data_dir']}, pid {node['pid']})",
                  f"           TAXII {node['taxii_url']}  console {node['console_url']}",
                  f"           token (shown once): {node['token']}"]
    lines.append(f"Open {info['nodes']['host']['operation_url']} and sign in with the host token; the partners' "
                 "operation tokens (below) show the same page as each partner sees it.")
    lines += [f"  {org}: {token}" for org, token in info["partner_tokens"].items()]
    lines.append("Ctrl-C stops the three nodes.")
    return lines


def run_games_nodes(base: Path, ports: dict[str, int], as_json: bool, out: TextIO) -> None:
    """Set up, play and serve the Games day until interrupted; every server is stopped on the way out."""
    if base.exists() and (not base.is_dir() or any(base.iterdir())):
        raise CliError(f"{base} is not an empty directory; give the Games demo a new --data directory",
                       code="not-demo")
    ports = {role: port or free_port() for role, port in ports.items()}
    if len(set(ports.values())) != len(ports):
        raise CliError("the three nodes need three different ports", code="port")

    def say(text: str) -> None:
        if not as_json:
            print(text, file=sys.stderr, flush=True)

    day = GamesDay(base, ports, say)
    with terminate_as_interrupt():
        try:
            for node in day.nodes:
                node.data_dir.mkdir(parents=True, exist_ok=True)
            say(f"Setting up the Games day in {base} (three nodes on ports "
                f"{', '.join(str(n.port) for n in day.nodes)})")
            day.set_up()
            for node in day.nodes:
                day.start(node)
            day.play()
            info = day.summary()
            print(json.dumps(info) if as_json else "\n".join(summary_lines(info)), file=out, flush=True)
            while True:
                for node in day.nodes:
                    assert node.process is not None
                    if node.process.poll() is not None:
                        raise CliError(f"the {node.role} node's server exited ({node.process.returncode}); "
                                       f"see {node.data_dir / 'serve.log'}", code="games")
                time.sleep(0.5)  # watching the servers until the operator stops the demo
        except KeyboardInterrupt:
            say("Stopping the three nodes")
        finally:
            day.stop()
