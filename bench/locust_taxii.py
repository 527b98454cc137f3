"""The locust scenario of ``bench/bench_load.py``: TAXII 2.1 clients reading, writing and syncing.

Each simulated client is one analyst tool or partner node with its own token (the driver makes one per
client, so per-token limits and per-token status resources behave as in life). Weights:

- read (6): a page of objects (``limit=100``, a type filter half the time), the manifest, one object by
  id, or the collections list;
- write (2): an envelope of 10 new indicators, then its status resource;
- sync (2): what a pulling partner does: pages of ``limit=200`` by ``added_after`` from where it last
  stopped, following ``next``, until ``more`` is false.

Configured by the driver through the environment: ``KIZUNA_LOAD_API_ROOT`` (URL of the API root),
``KIZUNA_LOAD_COLLECTION``, ``KIZUNA_LOAD_TOKENS`` (comma-separated), ``KIZUNA_LOAD_IDS`` (a file of
stored object ids, one a line). Run it through the driver, not on its own.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import threading
import uuid
from typing import Any

from locust import HttpUser, between, task

TAXII = "application/taxii+json;version=2.1"
_TOKENS = os.environ.get("KIZUNA_LOAD_TOKENS", "").split(",")
_NEXT_TOKEN = itertools.cycle(range(len(_TOKENS)))
_LOCK = threading.Lock()
_IDS: list[str] = []
if os.environ.get("KIZUNA_LOAD_IDS"):
    with open(os.environ["KIZUNA_LOAD_IDS"], encoding="utf-8") as listed:
        _IDS = [line.strip() for line in listed if line.strip()]


def _indicator(tag: str) -> dict[str, Any]:
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
            "created": "2026-03-01T00:00:00.000Z", "modified": "2026-03-01T00:00:00.000Z",
            "name": tag, "pattern_type": "stix", "valid_from": "2026-03-01T00:00:00Z",
            "pattern": f"[ipv4-addr:value = '198.51.100.{random.randrange(1, 255)}']"}


class TaxiiClient(HttpUser):
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        with _LOCK:
            token = _TOKENS[next(_NEXT_TOKEN)]
        self.client.headers.update({"Accept": TAXII, "Authorization": f"Bearer {token}"})
        self.root = os.environ["KIZUNA_LOAD_API_ROOT"].rstrip("/") + "/"
        self.objects = f"{self.root}collections/{os.environ['KIZUNA_LOAD_COLLECTION']}/"
        self.synced_to: str | None = None

    @task(6)
    def read(self) -> None:
        choice = random.randrange(4)
        if choice == 0:
            params = {"limit": "100", **({"match[type]": "indicator"} if random.random() < 0.5 else {})}
            self.client.get(self.objects + "objects/", params=params, name="objects page")
        elif choice == 1:
            self.client.get(self.objects + "manifest/", params={"limit": "100"}, name="manifest page")
        elif choice == 2 and _IDS:
            self.client.get(f"{self.objects}objects/{random.choice(_IDS)}/", name="object by id")
        else:
            self.client.get(self.root + "collections/", name="collections")

    @task(2)
    def write(self) -> None:
        body = json.dumps({"objects": [_indicator("load") for _ in range(10)]})
        with self.client.post(self.objects + "objects/", data=body, headers={"Content-Type": TAXII},
                              name="post 10 objects", catch_response=True) as answer:
            if answer.status_code != 202:
                answer.failure(f"{answer.status_code}: {answer.text[:200]}")
                return
            status_id = answer.json()["id"]
        self.client.get(f"{self.root}status/{status_id}/", name="status")

    @task(2)
    def sync(self) -> None:
        first: dict[str, str] = {"limit": "200"}
        if self.synced_to:
            first["added_after"] = self.synced_to
        params = first
        for _ in range(50):  # a partner pulls at most this many pages a round
            with self.client.get(self.objects + "objects/", params=params, name="sync page",
                                 catch_response=True) as answer:
                if answer.status_code != 200:
                    answer.failure(f"{answer.status_code}: {answer.text[:200]}")
                    return
                envelope = answer.json()
                last = answer.headers.get("X-TAXII-Date-Added-Last")
            if last:
                self.synced_to = last
            if not envelope.get("more") or not envelope.get("next"):
                return
            params = {**first, "next": envelope["next"]}  # a cursor goes with the filters it was issued for
