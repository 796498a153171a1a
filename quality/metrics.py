"""Prometheus figures — requests, latency, scans, logins, the pool — as one view
across every worker process.

`quality serve` runs prometheus-client in its multiprocess mode: each worker
writes its figures to files in one directory (`PROMETHEUS_MULTIPROC_DIR`,
emptied at server start by `prepare_multiprocess_dir`), and whichever worker
answers a scrape sums every worker's files. Counters and histograms of workers
that exited still count; the pool gauges (`livesum`) count live workers only.

Pool figures are kept by the pool itself (`Database.stats()`, and its bulk
lane's `db.bulk.stats()`); each process
copies them into the metrics once a second and again just before it answers a
scrape, so the scan path pays nothing for them. The acquire-wait histogram is
observed at each acquire. With a read replica (quality/replica.py), its
figures come the same way: whether it answers, its lag, and the reads it
served against those the primary answered instead, by reason.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import re
import shutil
import tempfile
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from quality.db import Database
from quality.replica import REASONS

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
PUBLISH_SECONDS = 1.0
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db")

_POOL_GAUGES = (
    ("size", "Open connections (in use + idle + connecting)"),
    ("in_use", "Connections lent to requests"),
    ("idle", "Connections waiting in the pool"),
    ("waiting", "Requests waiting for a connection"),
    ("max", "Most connections the pools may open"),
)
_POOL_COUNTERS = (
    ("timeouts", "Acquires that gave up after the pool timeout"),
    ("discarded", "Connections closed as dead, expired or interrupted"),
    ("created", "Connections opened"),
    ("acquired", "Connections lent out"),
    ("reruns", "Transactions run again after a deadlock, Galera certification failure, lock wait"
               " timeout or a node that could not serve"),
)
# The pool's bulk lane (exports, reports, list totals): its share of the connections.
_LANE_GAUGES = (
    ("in_use", "Bulk transactions holding (or about to hold) a connection"),
    ("waiting", "Bulk transactions waiting for a place in the lane"),
    ("max", "Most connections bulk transactions may hold"),
)


def prepare_multiprocess_dir() -> Path:
    """Give the server's workers one empty directory for their metric files.

    Call before uvicorn starts (workers inherit the environment). Uses
    `PROMETHEUS_MULTIPROC_DIR` when set, else a temporary directory removed
    at exit.
    """
    configured = os.environ.get(MULTIPROCESS_ENV)
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
        # Files left by an earlier run would be summed into this one's figures.
        for stale in directory.glob("*.db"):
            stale.unlink()
    else:
        directory = Path(tempfile.mkdtemp(prefix="quality-metrics-"))
        atexit.register(shutil.rmtree, directory, True)
        os.environ[MULTIPROCESS_ENV] = str(directory)
    # prometheus-client picks its value class when first imported, which this
    # module did before the variable was set; with one worker uvicorn serves
    # in this very process, so pick again (no metric exists here yet).
    values.ValueClass = values.get_value_class()
    return directory


class Metrics:
    def __init__(self) -> None:
        self.directory = os.environ.get(MULTIPROCESS_ENV) or None
        if self.directory and not getattr(values.ValueClass, "_multiprocess", False):
            raise RuntimeError(f"{MULTIPROCESS_ENV} was set after prometheus_client chose "
                               "its value class; call prepare_multiprocess_dir() first")
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
        self.pool_wait = Histogram(
            "quality_db_pool_acquire_wait_seconds", "Time spent waiting for a connection",
            registry=self.registry, buckets=WAIT_BUCKETS,
        )
        self.pool_gauges = {
            name: Gauge(f"quality_db_pool_{name}", help_text, registry=self.registry,
                        multiprocess_mode="livesum")
            for name, help_text in _POOL_GAUGES
        }
        self.pool_counters = {
            name: Counter(f"quality_db_pool_{name}", help_text, registry=self.registry)
            for name, help_text in _POOL_COUNTERS
        }
        self.lane_gauges = {
            name: Gauge(f"quality_db_pool_bulk_{name}", help_text, registry=self.registry,
                        multiprocess_mode="livesum")
            for name, help_text in _LANE_GAUGES
        }
        self.lane_timeouts = Counter("quality_db_pool_bulk_timeouts",
                                     "Bulk transactions that gave up waiting for a place in the lane",
                                     registry=self.registry)
        self.notifications = Counter("quality_alert_notifications",
                                     "Alert notifications sent, and given up on after every retry",
                                     ["outcome"], registry=self.registry)
        self.notifications_pending = Gauge("quality_alert_notifications_pending",
                                           "Alert notifications waiting to be sent (or tried again)",
                                           registry=self.registry, multiprocess_mode="mostrecent")
        self._counted = dict.fromkeys([*self.pool_counters, "bulk_timeouts", "replica_reads",
                                       *(f"fallbacks_{reason}" for reason in REASONS)], 0)
        self.replica: _ReplicaFigures | None = None  # made by watch_pool when there is a replica
        self._db: Database | None = None
        self._publisher: asyncio.Task[None] | None = None

    # -- the pool -------------------------------------------------------------

    def watch_pool(self, db: Database) -> None:
        """Follow `db` from now on (call in the lifespan, on the serving loop)."""
        self._db = db
        db.observe_wait = self.pool_wait.observe
        if db.replica is not None and self.replica is None:
            self.replica = _ReplicaFigures(self.registry)
        self.publish_pool()
        self._publisher = asyncio.create_task(self._publish_forever(), name="pool-metrics")

    async def stop(self) -> None:
        """Stop following the pool; this process's pool gauges leave the sums."""
        if self._publisher:
            self._publisher.cancel()
            await asyncio.gather(self._publisher, return_exceptions=True)
        if self.directory:
            mark_process_dead(os.getpid(), self.directory)

    def publish_pool(self) -> None:
        if self._db is None:
            return
        stats = self._db.stats()
        for name, gauge in self.pool_gauges.items():
            gauge.set(getattr(stats, "maxsize" if name == "max" else name))
        for name, counter in self.pool_counters.items():
            self._count(name, counter, getattr(stats, name))
        lane = self._db.bulk.stats()
        for name, gauge in self.lane_gauges.items():
            gauge.set(getattr(lane, "maxsize" if name == "max" else name))
        self._count("bulk_timeouts", self.lane_timeouts, lane.timeouts)
        if (replica := self._db.replica) is not None and (figures := self.replica) is not None:
            figures.up.set(int(replica.reachable))
            figures.lag.set(float("nan") if replica.lag is None else replica.lag)
            self._count("replica_reads", figures.reads, replica.served)
            for reason in REASONS:
                self._count(f"fallbacks_{reason}", figures.fallbacks.labels(reason),
                            replica.fallbacks[reason])

    def _count(self, name: str, counter: Counter, total: int) -> None:
        """Move a counter up to the pool's own running total."""
        if total > self._counted[name]:
            counter.inc(total - self._counted[name])
            self._counted[name] = total

    async def _publish_forever(self) -> None:
        while True:
            await asyncio.sleep(PUBLISH_SECONDS)
            self.publish_pool()

    # -- the scrape -------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text for this process, or for all workers in multiprocess mode."""
        self.publish_pool()
        if self.directory is None:
            return generate_latest(self.registry)
        self._forget_dead_workers()
        registry = CollectorRegistry()
        MultiProcessCollector(registry, self.directory)
        return generate_latest(registry)

    def _forget_dead_workers(self) -> None:
        """Drop the live gauges of workers that died without saying so (a crash)."""
        assert self.directory
        for path in Path(self.directory).glob("gauge_live*.db"):
            found = _LIVE_GAUGE_FILE.fullmatch(path.name)
            if found and not _alive(int(found[1])):
                mark_process_dead(int(found[1]), self.directory)


class _ReplicaFigures:
    """The read replica's metrics. Its gauges show, across workers, the worst
    view: any worker that cannot reach it, the largest lag."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge("quality_db_replica_up", "Whether the read replica answers (1) or not (0)",
                        registry=registry, multiprocess_mode="livemin")
        self.lag = Gauge("quality_db_replica_lag_seconds",
                         "How far the read replica was behind the primary at the last check",
                         registry=registry, multiprocess_mode="livemax")
        self.reads = Counter("quality_db_replica_reads", "Reads the read replica answered",
                             registry=registry)
        self.fallbacks = Counter("quality_db_replica_fallbacks",
                                 "Reads meant for the replica that the primary answered, by reason"
                                 " (unreachable, lagging, own_write, failed)", ["reason"], registry=registry)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: alive
    return True
