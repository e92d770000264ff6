"""The server's /metrics: host CPU, memory and disk, and the store's size, from a real server."""

from __future__ import annotations

import re
import urllib.request

import pytest

import modelbox_autolog as mbx

from .conftest import free_port

pytest.importorskip("psutil")


def _gauge(text: str, name: str) -> float:
    match = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


def test_host_and_store_size_gauges(server_factory, tmp_path):
    metrics_port = free_port()
    server = server_factory("--metrics-port", str(metrics_port)).start()
    payload = tmp_path / "weights.bin"
    payload.write_bytes(b"x" * 300_000)
    mbx.autolog(frameworks=[], backend=server.uri, capture_console=False, capture_env=False)
    with mbx.start_run(name="sized") as run:
        run.log_metric("loss", 0.5)
        run.log_artifact(str(payload))
    assert mbx.flush(20)

    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    assert 0 <= _gauge(text, "modelbox_host_cpu_percent") <= 100
    used, total = _gauge(text, "modelbox_host_memory_used_bytes"), _gauge(text, "modelbox_host_memory_total_bytes")
    assert 0 < used < total
    assert 0 < _gauge(text, "modelbox_host_disk_free_bytes") <= _gauge(text, "modelbox_host_disk_total_bytes")
    assert _gauge(text, "modelbox_store_database_bytes") > 0
    assert _gauge(text, "modelbox_store_artifacts_bytes") >= 300_000
    assert _gauge(text, "modelbox_store_artifact_files") >= 1
