"""Prometheus figures for one process: requests, latency, the pool, logins."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from quality.db import WAIT_BUCKETS, Database


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "quality_http_requests", "HTTP requests by route and status",
            ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "quality_http_request_duration_seconds", "Time to answer an HTTP request",
            ["route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.login_failures = Counter(
            "quality_login_failures", "Failed sign-in attempts", registry=self.registry
        )
        self.scans_saved = Counter(
            "quality_scans_saved", "Scans saved by station and verdict",
            ["station", "verdict"], registry=self.registry,
        )

        self.pool = PoolCollector()
        self.registry.register(self.pool)

    def watch_pool(self, db: Database) -> None:
        self.pool.db = db


class PoolCollector(Collector):
    db: Database | None = None

    def collect(self) -> Iterator[Metric]:
        if self.db is None:
            return
        stats = self.db.stats()
        for name, help_text, value in (
            ("size", "Open connections (in use + idle + connecting)", stats.size),
            ("in_use", "Connections lent to requests", stats.in_use),
            ("idle", "Connections waiting in the pool", stats.idle),
            ("waiting", "Requests waiting for a connection", stats.waiting),
            ("max", "Most connections the pool may open", stats.maxsize),
        ):
            yield GaugeMetricFamily(f"quality_db_pool_{name}", help_text, value=value)
        for name, help_text, value in (
            ("timeouts", "Acquires that gave up after the pool timeout", stats.timeouts),
            ("discarded", "Connections closed as dead, expired or interrupted", stats.discarded),
            ("created", "Connections opened", stats.created),
            ("acquired", "Connections lent out", stats.acquired),
        ):
            yield CounterMetricFamily(f"quality_db_pool_{name}", help_text, value=value)
        cumulative, buckets = 0, []
        for bound, count in zip((*WAIT_BUCKETS, float("inf")), stats.wait_buckets, strict=True):
            cumulative += count
            buckets.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
        yield HistogramMetricFamily(
            "quality_db_pool_acquire_wait_seconds", "Time spent waiting for a connection",
            buckets=buckets, sum_value=stats.wait_seconds_sum,
        )
