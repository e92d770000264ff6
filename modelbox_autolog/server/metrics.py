"""Prometheus instruments of the server, on a registry of its own (several servers per process in tests)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
