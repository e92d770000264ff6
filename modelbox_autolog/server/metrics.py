"""Prometheus instruments of the server, on a registry of its own (several servers per process in tests)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class HostCollector:
    """Host CPU, memory and disk, and the store's size, read at scrape time (psutil).

    The artifacts folder is walked at most once a minute (a large store has many files).
    """

    ARTIFACTS_TTL_S = 60.0

    def __init__(self, database: str, artifacts_dir: str) -> None:
        import psutil

        self._psutil = psutil
        self._database = database
        self._artifacts_dir = artifacts_dir
        self._artifacts: tuple[float, int, int] | None = None  # (when, bytes, files)
        self._lock = threading.Lock()
        psutil.cpu_percent(None)  # the first scrape reports the time since the server started

    def _artifacts_size(self) -> tuple[int, int]:
        with self._lock:
            cached = self._artifacts
            if cached is not None and time.monotonic() - cached[0] < self.ARTIFACTS_TTL_S:
                return cached[1], cached[2]
            total = files = 0
            for folder, _dirs, names in os.walk(self._artifacts_dir):
                for name in names:
                    try:
                        total += os.path.getsize(os.path.join(folder, name))
                        files += 1
                    except OSError:
                        pass
            self._artifacts = (time.monotonic(), total, files)
            return total, files

    def collect(self) -> Iterator[GaugeMetricFamily]:
        psutil = self._psutil
        yield GaugeMetricFamily("modelbox_host_cpu_percent", "Host CPU use since the previous scrape, % of all cores",
                                value=psutil.cpu_percent(None))
        memory = psutil.virtual_memory()
        yield GaugeMetricFamily("modelbox_host_memory_used_bytes", "Host memory in use", value=memory.total - memory.available)
        yield GaugeMetricFamily("modelbox_host_memory_total_bytes", "Host memory", value=memory.total)
        folder = self._artifacts_dir if os.path.isdir(self._artifacts_dir) else os.path.dirname(self._database)
        try:
            disk = psutil.disk_usage(folder)
            yield GaugeMetricFamily("modelbox_host_disk_free_bytes", "Free space on the store's file system", value=disk.free)
            yield GaugeMetricFamily("modelbox_host_disk_total_bytes", "Size of the store's file system", value=disk.total)
        except OSError:
            pass
        database = sum(os.path.getsize(self._database + suffix) for suffix in ("", "-wal", "-shm")
                       if os.path.exists(self._database + suffix))
        yield GaugeMetricFamily("modelbox_store_database_bytes", "The store's SQLite file, with its WAL", value=database)
        size, files = self._artifacts_size()
        yield GaugeMetricFamily("modelbox_store_artifacts_bytes", "Bytes in the artifacts folder (refreshed each minute)",
                                value=size)
        yield GaugeMetricFamily("modelbox_store_artifact_files", "Files in the artifacts folder (refreshed each minute)",
                                value=files)


class ServerMetrics:
    def __init__(self, database: str | None = None, artifacts_dir: str | None = None) -> None:
        self.registry = CollectorRegistry()
        if database is not None and artifacts_dir is not None:
            self.registry.register(HostCollector(database, artifacts_dir))
        ProcessCollector(registry=self.registry)  # CPU seconds, resident memory, open fds
        PlatformCollector(registry=self.registry)
        r = self.registry
        self.rpc_seconds = Histogram("modelbox_rpc_duration_seconds", "Time to serve one RPC (streams: until the last message)",
                                     ["method", "code"], buckets=_LATENCY_BUCKETS, registry=r)
        self.received_bytes = Counter("modelbox_received_bytes", "Request bytes received", ["method"], registry=r)
        self.records = Counter("modelbox_records_written", "Records stored, by type", ["type"], registry=r)
        self.batches = Counter("modelbox_batches", "Write batches, by outcome", ["outcome"], registry=r)
        self.bytes_written = Counter("modelbox_bytes_written", "Bytes written to the store (batches) and artifacts (uploads)",
                                     ["kind"], registry=r)
        self.active_streams = Gauge("modelbox_active_streams", "Streaming RPCs in progress", ["method"], registry=r)
        self.in_flight = Gauge("modelbox_rpcs_in_flight", "RPCs being served", registry=r)
        self.auth_failures = Counter("modelbox_auth_failures", "Calls refused for a missing or wrong token", registry=r)
        self.permission_denied = Counter("modelbox_permission_denied", "Calls refused by the access policy, by method",
                                         ["method"], registry=r)
        self.store_up = Gauge("modelbox_store_up", "1 while the metadata store answers (health SERVING), else 0", registry=r)
        self.db_seconds = Histogram("modelbox_db_operation_seconds", "Time of one database operation (a query, a batch's "
                                    "transaction), including waiting for a pooled connection", ["operation", "outcome"],
                                    buckets=_LATENCY_BUCKETS, registry=r)
        self.artifact_seconds = Histogram("modelbox_artifact_request_seconds", "Time of one artifact-store request "
                                          "(S3: one HTTP request)", ["store", "operation", "outcome"],
                                          buckets=_LATENCY_BUCKETS, registry=r)
        self.artifact_errors = Counter("modelbox_artifact_request_errors", "Failed artifact-store requests, by error",
                                       ["store", "operation", "error"], registry=r)

    def observe_query(self, operation: str, seconds: float, error: str | None) -> None:
        self.db_seconds.labels(operation, "error" if error else "ok").observe(seconds)

    def observe_artifacts(self, store: object):
        kind = "s3" if getattr(store, "uri", "").startswith("s3://") else "local"

        def observe(operation: str, seconds: float, error: str | None) -> None:
            self.artifact_seconds.labels(kind, operation, "error" if error else "ok").observe(seconds)
            if error:
                self.artifact_errors.labels(kind, operation, error).inc()

        return observe

    def watch_store(self, store: object) -> None:
        """Export the store's connection-pool figures at each scrape (PostgreSQL)."""
        stats = getattr(store, "pool_stats", None)
        if stats is not None:
            self.registry.register(_PoolCollector(stats))
        database, folder = getattr(store, "path", None), getattr(store, "artifacts_dir", None)
        if database and database != ":memory:" and folder:  # a SQLite file and a local folder: their sizes too
            self.registry.register(HostCollector(database, folder))
        self.store_up.set(1)


class _PoolCollector:
    """psycopg_pool's counters, read when /metrics is scraped."""

    _GAUGES = {"pool_size": "connections open", "pool_available": "connections idle in the pool",
               "requests_waiting": "callers waiting for a connection"}
    _COUNTERS = {"requests_num": "connections handed out", "requests_queued": "requests that had to wait",
                 "requests_errors": "requests that failed (timeout, pool closed)", "connections_errors": "failed connection attempts",
                 "connections_lost": "connections found broken", "usage_ms": "milliseconds connections were in use"}

    def __init__(self, stats) -> None:
        self._stats = stats

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        values = self._stats()
        for name, text in self._GAUGES.items():
            yield GaugeMetricFamily(f"modelbox_db_pool_{name}", f"Database pool: {text}", value=values.get(name, 0))
        for name, text in self._COUNTERS.items():
            yield CounterMetricFamily(f"modelbox_db_pool_{name}", f"Database pool: {text}", value=values.get(name, 0))
