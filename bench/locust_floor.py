"""The floor of ``bench/bench_load.py``: the same clients and pacing as locust_taxii.py, on ``/healthz``
(no token, no store), so the run shows what the HTTP stack and locust alone cost on the machine."""

from __future__ import annotations

from locust import HttpUser, between, task


class HealthProbe(HttpUser):
    wait_time = between(0.5, 2.0)

    @task
    def healthz(self) -> None:
        self.client.get("/healthz", name="healthz")
