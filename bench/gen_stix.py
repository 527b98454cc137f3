"""Deterministic, realistic STIX 2.1 objects for benchmarks.

The mix looks like a threat-intel feed: mostly indicators with real-looking patterns, relationships between
them, malware and attack patterns, a few producer identities, and some ids that come back as newer versions.
The same seed always gives the same objects, so two servers (or two runs) ingest byte-identical input.

    python -m bench.gen_stix --count 10000                       # print size statistics
    python -m bench.gen_stix --bundle /tmp/b.json --size-mb 1024   # stream a bundle file of about that size
"""

from __future__ import annotations

import argparse
import random
import sys
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.common import positive_int

TLP_GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
TLP_CLEAR = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"
TLP_AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
MARKINGS = (TLP_CLEAR, TLP_GREEN, TLP_GREEN, TLP_GREEN, TLP_AMBER)
EPOCH = datetime(2023, 1, 1, tzinfo=UTC)

KILL_CHAIN_PHASES = (
    "reconnaissance",
    "initial-access",
    "execution",
    "persistence",
    "privilege-escalation",
    "defense-evasion",
    "credential-access",
    "discovery",
    "lateral-movement",
    "collection",
    "command-and-control",
    "exfiltration",
    "impact",
)
MALWARE_FAMILIES = (
    "Emotet",
    "Qakbot",
    "IcedID",
    "AgentTesla",
    "Formbook",
    "RedLine",
    "Cobalt Strike",
    "PlugX",
    "ShadowPad",
    "Raccoon",
    "LockBit",
    "BlackCat",
    "Remcos",
    "AsyncRAT",
    "njRAT",
    "Gh0st",
)
MALWARE_TYPES = (
    "backdoor",
    "bot",
    "dropper",
    "downloader",
    "keylogger",
    "ransomware",
    "remote-access-trojan",
    "spyware",
    "trojan",
    "worm",
)
TECHNIQUES = (
    "Phishing",
    "Spearphishing Attachment",
    "Command and Scripting Interpreter",
    "Scheduled Task",
    "Valid Accounts",
    "Process Injection",
    "Obfuscated Files or Information",
    "OS Credential Dumping",
    "Remote Services",
    "Ingress Tool Transfer",
    "Application Layer Protocol",
    "Data Encrypted for Impact",
    "Exfiltration Over C2 Channel",
    "System Information Discovery",
    "Masquerading",
    "Boot Autostart",
)
SECTORS = (
    "financial-services",
    "government-national",
    "healthcare",
    "energy",
    "telecommunications",
    "manufacturing",
    "education",
    "technology",
    "transportation",
    "retail",
)
TLDS = ("com", "net", "org", "info", "biz", "xyz", "top", "ru", "cn", "io")
WORDS = (
    "update",
    "secure",
    "login",
    "account",
    "cdn",
    "mail",
    "portal",
    "cloud",
    "sync",
    "verify",
    "invoice",
    "office",
    "service",
    "support",
    "static",
    "api",
    "files",
    "drive",
    "billing",
    "auth",
)
SOURCES = ("abuse.ch", "CIRCL", "national-cert", "sector-isac", "vendor-feed", "internal-soc")


class StixGenerator:
    """Iterates realistic STIX 2.1 objects; ~5% of them are newer versions of ids already emitted."""

    def __init__(self, seed: int = 2024, revision_rate: float = 0.05, markings: Sequence[str] = MARKINGS) -> None:
        self.rng = random.Random(seed)
        self.markings = tuple(markings)
        self.revision_rate = revision_rate
        self.clock = EPOCH
        self.identity_ids: list[str] = []
        self.malware_ids: list[str] = []
        self.attack_pattern_ids: list[str] = []
        self.indicator_ids: list[str] = []
        # Recently emitted versionable objects, kept so a later object can be a newer version of one of them.
        self.revisable: list[dict[str, Any]] = []

    def _id(self, stix_type: str) -> str:
        return f"{stix_type}--{uuid.UUID(int=self.rng.getrandbits(128), version=4)}"

    def _tick(self) -> str:
        self.clock += timedelta(milliseconds=self.rng.randint(1, 4000))
        return self.clock.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.clock.microsecond // 1000:03d}Z"

    def _common(self, stix_type: str) -> dict[str, Any]:
        stamp = self._tick()
        common: dict[str, Any] = {
            "type": stix_type,
            "spec_version": "2.1",
            "id": self._id(stix_type),
            "created": stamp,
            "modified": stamp,
        }
        if self.identity_ids:
            common["created_by_ref"] = self.rng.choice(self.identity_ids)
        common["object_marking_refs"] = [self.rng.choice(self.markings)]
        return common

    def _external_reference(self) -> dict[str, str]:
        source = self.rng.choice(SOURCES)
        return {
            "source_name": source,
            "url": f"https://{source.replace('.', '-')}.example/reports/{self.rng.randint(10000, 99999)}",
            "external_id": f"R-{self.rng.randint(100000, 999999)}",
        }

    def _domain(self) -> str:
        return f"{self.rng.choice(WORDS)}-{self.rng.choice(WORDS)}{self.rng.randint(1, 999)}.{self.rng.choice(TLDS)}"

    def _pattern(self) -> tuple[str, str]:
        kind = self.rng.randrange(6)
        if kind == 0:
            ip = ".".join(str(self.rng.randint(1, 254)) for _ in range(4))
            return f"[ipv4-addr:value = '{ip}']", f"Malicious IP {ip}"
        if kind == 1:
            domain = self._domain()
            return f"[domain-name:value = '{domain}']", f"Malicious domain {domain}"
        if kind == 2:
            url = f"http://{self._domain()}/{self.rng.choice(WORDS)}/{self.rng.getrandbits(32):08x}.php"
            return f"[url:value = '{url}']", f"Malicious URL {url}"
        if kind == 3:
            digest = f"{self.rng.getrandbits(256):064x}"
            return f"[file:hashes.'SHA-256' = '{digest}']", f"Malicious file {digest[:16]}"
        if kind == 4:
            md5 = f"{self.rng.getrandbits(128):032x}"
            name = f"{self.rng.choice(WORDS)}_{self.rng.randint(1, 99)}.{self.rng.choice(('exe', 'dll', 'js'))}"
            return (f"[file:hashes.MD5 = '{md5}' AND file:name = '{name}']", f"Malicious file {name}")
        sender = f"{self.rng.choice(WORDS)}@{self._domain()}"
        return (
            f"[email-message:from_ref.value = '{sender}' AND email-message:subject LIKE '%invoice%']",
            f"Phishing sender {sender}",
        )

    def identity(self) -> dict[str, Any]:
        obj = self._common("identity")
        obj.pop("created_by_ref", None)
        name = f"{self.rng.choice(SOURCES)} team {len(self.identity_ids) + 1}"
        obj.update(
            {
                "name": name,
                "identity_class": "organization",
                "sectors": self.rng.sample(SECTORS, 2),
                "description": f"Producer of shared threat intelligence ({name}).",
                "contact_information": f"cti{len(self.identity_ids) + 1}@example.org",
            }
        )
        self.identity_ids.append(obj["id"])
        return obj

    def indicator(self) -> dict[str, Any]:
        obj = self._common("indicator")
        pattern, name = self._pattern()
        obj.update(
            {
                "name": name,
                "description": (
                    f"Observed in {self.rng.choice(MALWARE_FAMILIES)} activity targeting "
                    f"{self.rng.choice(SECTORS)}; seen by {self.rng.randint(2, 40)} sensors."
                ),
                "indicator_types": [self.rng.choice(("malicious-activity", "anomalous-activity", "compromised"))],
                "pattern": pattern,
                "pattern_type": "stix",
                "pattern_version": "2.1",
                "valid_from": obj["created"],
                "kill_chain_phases": [
                    {"kill_chain_name": "mitre-attack", "phase_name": self.rng.choice(KILL_CHAIN_PHASES)}
                ],
                "labels": self.rng.sample(("phishing", "c2", "botnet", "ransomware", "apt", "crimeware"), 2),
                "confidence": self.rng.choice((15, 50, 70, 85, 100)),
                "external_references": [self._external_reference()],
            }
        )
        self.indicator_ids.append(obj["id"])
        return obj

    def malware(self) -> dict[str, Any]:
        obj = self._common("malware")
        family = self.rng.choice(MALWARE_FAMILIES)
        obj.update(
            {
                "name": f"{family} variant {self.rng.randint(1, 400)}",
                "description": f"{family} sample cluster, distributed via {self.rng.choice(WORDS)} lures.",
                "malware_types": self.rng.sample(MALWARE_TYPES, 2),
                "is_family": False,
                "aliases": [f"{family.lower()}-{self.rng.randint(1, 50)}"],
                "kill_chain_phases": [
                    {"kill_chain_name": "mitre-attack", "phase_name": self.rng.choice(KILL_CHAIN_PHASES)}
                ],
                "external_references": [self._external_reference()],
            }
        )
        self.malware_ids.append(obj["id"])
        return obj

    def attack_pattern(self) -> dict[str, Any]:
        obj = self._common("attack-pattern")
        technique = self.rng.choice(TECHNIQUES)
        number = self.rng.randint(1000, 1600)
        obj.update(
            {
                "name": f"{technique} ({number})",
                "description": f"Adversaries may use {technique.lower()} to achieve their objectives.",
                "kill_chain_phases": [
                    {"kill_chain_name": "mitre-attack", "phase_name": self.rng.choice(KILL_CHAIN_PHASES)}
                ],
                "external_references": [
                    {
                        "source_name": "mitre-attack",
                        "external_id": f"T{number}",
                        "url": f"https://attack.mitre.org/techniques/T{number}/",
                    }
                ],
            }
        )
        self.attack_pattern_ids.append(obj["id"])
        return obj

    def relationship(self) -> dict[str, Any]:
        obj = self._common("relationship")
        choice = self.rng.randrange(3)
        if choice == 0 and self.indicator_ids and self.malware_ids:
            source, kind, target = (
                self.rng.choice(self.indicator_ids),
                "indicates",
                self.rng.choice(self.malware_ids),
            )
        elif choice == 1 and self.malware_ids and self.attack_pattern_ids:
            source, kind, target = (
                self.rng.choice(self.malware_ids),
                "uses",
                self.rng.choice(self.attack_pattern_ids),
            )
        elif self.attack_pattern_ids and self.identity_ids:
            source, kind, target = (
                self.rng.choice(self.attack_pattern_ids),
                "targets",
                self.rng.choice(self.identity_ids),
            )
        else:
            return self.indicator()
        obj.update(
            {
                "relationship_type": kind,
                "source_ref": source,
                "target_ref": target,
                "description": f"{kind} relation reported with confidence {self.rng.randint(10, 100)}.",
                "confidence": self.rng.choice((50, 70, 85)),
            }
        )
        return obj

    def revision(self) -> dict[str, Any]:
        """A newer version of an earlier object: same id and created, later modified, changed content."""
        previous = self.rng.choice(self.revisable)
        revised = dict(previous)
        revised["modified"] = self._tick()
        revised["confidence"] = self.rng.choice((15, 50, 70, 85, 100))
        revised["description"] = previous.get("description", "") + " Updated assessment."
        return revised

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for _ in range(8):
            yield self.identity()
        for _ in range(5):
            yield self.malware()
            yield self.attack_pattern()
        while True:
            if self.revisable and self.rng.random() < self.revision_rate:
                obj = self.revision()
            else:
                roll = self.rng.random()
                if roll < 0.55:
                    obj = self.indicator()
                elif roll < 0.80:
                    obj = self.relationship()
                elif roll < 0.90:
                    obj = self.malware()
                elif roll < 0.995:
                    obj = self.attack_pattern()
                else:
                    obj = self.identity()
            if obj["type"] != "identity":
                self.revisable.append(obj)
                if len(self.revisable) > 5000:
                    del self.revisable[: len(self.revisable) // 2]
            yield obj


def generate(count: int, seed: int = 2024, markings: Sequence[str] = MARKINGS) -> Iterator[dict[str, Any]]:
    """The first `count` objects for `seed`."""
    for index, obj in enumerate(StixGenerator(seed, markings=markings)):
        if index >= count:
            return
        yield obj


def envelopes(
    count: int, per_envelope: int = 1000, seed: int = 2024, markings: Sequence[str] = MARKINGS
) -> list[bytes]:
    """Serialized TAXII envelopes, ready to POST; built up front so serialization is not timed."""
    result: list[bytes] = []
    batch: list[dict[str, Any]] = []
    for obj in generate(count, seed, markings):
        batch.append(obj)
        if len(batch) == per_envelope:
            result.append(orjson.dumps({"objects": batch}))
            batch = []
    if batch:
        result.append(orjson.dumps({"objects": batch}))
    return result


def write_bundle(path: Path, size_bytes: int, seed: int = 99, markings: Sequence[str] = MARKINGS) -> int:
    """Stream a bundle of about `size_bytes` to disk, never holding it in memory; returns the object count."""
    generator = StixGenerator(seed, markings=markings)
    bundle_id = f"bundle--{uuid.UUID(int=random.Random(seed).getrandbits(128), version=4)}"
    written = 0
    count = 0
    with open(path, "wb") as out:
        head = b'{"type":"bundle","id":"' + bundle_id.encode() + b'","objects":[\n'
        out.write(head)
        written += len(head)
        for obj in generator:
            chunk = (b",\n" if count else b"") + orjson.dumps(obj)
            out.write(chunk)
            written += len(chunk)
            count += 1
            if written >= size_bytes:
                break
        out.write(b"\n]}\n")
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=positive_int, default=10000, help="objects to generate for statistics")
    parser.add_argument("--seed", type=int, default=2024,
                        help="seed of the generator (the same seed, the same objects)")
    parser.add_argument("--bundle", type=Path, help="write a bundle file here instead of printing statistics")
    parser.add_argument("--size-mb", type=float, default=100.0, help="bundle size in MiB (with --bundle)")
    args = parser.parse_args(argv)
    if args.bundle:
        count = write_bundle(args.bundle, int(args.size_mb * 1024 * 1024), args.seed)
        print(orjson.dumps({"path": str(args.bundle), "objects": count, "bytes": args.bundle.stat().st_size}).decode())
        return 0
    sizes: list[int] = []
    types: dict[str, int] = {}
    ids: set[str] = set()
    for obj in generate(args.count, args.seed):
        sizes.append(len(orjson.dumps(obj)))
        types[obj["type"]] = types.get(obj["type"], 0) + 1
        ids.add(obj["id"])
    print(
        orjson.dumps(
            {
                "objects": len(sizes),
                "distinct_ids": len(ids),
                "avg_bytes": round(sum(sizes) / len(sizes)),
                "types": types,
            }
        ).decode()
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
