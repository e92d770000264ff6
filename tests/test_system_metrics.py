"""System metrics: the real sampler thread (psutil) sees CPU burnt and memory allocated in a run."""

from __future__ import annotations

import time

import pytest

import modelbox_autolog as mbx
from modelbox_autolog import _system_metrics

psutil = pytest.importorskip("psutil")

EXPECTED = {"system/cpu_percent", "system/host_cpu_percent", "system/memory_rss_mb", "system/memory_used_percent",
            "system/disk_read_mb", "system/disk_write_mb", "system/net_sent_mb", "system/net_recv_mb"}


def _wait_samples(count: int, timeout: float = 30.0, work=None) -> None:
    """Run ``work`` (or sleep) until the sampler has taken ``count`` more samples."""
    sampler = _system_metrics.sampler()
    target = sampler.samples + count
    deadline = time.monotonic() + timeout
    while sampler.samples < target and time.monotonic() < deadline:
        if work is None:
            time.sleep(0.02)
        else:
            work()
    assert sampler.samples >= target, "the sampler thread took no samples"


def test_sampler_sees_cpu_burnt_and_memory_allocated(store_uri, client):
    mbx.autolog(backend=store_uri, capture_console=False, system_metrics_interval=0.1)
    held = []
    with mbx.start_run(name="burn") as run:
        _wait_samples(2)  # idle

        def burn() -> None:  # pure-Python work on this thread, plus 300 MB that stays resident
            while len(held) < 30:
                held.append(bytearray(10 * 1024 * 1024))
                held[-1][::4096] = b"x" * len(held[-1][::4096])
            deadline = time.perf_counter() + 0.02
            while time.perf_counter() < deadline:
                sum(i * i for i in range(200))

        _wait_samples(4, work=burn)
    mbx.flush(10)
    stored = client.run(run.id)
    assert set(stored.metric_keys()) >= EXPECTED
    cpu = [p.value for p in stored.metrics("system/cpu_percent")]
    rss = [p.value for p in stored.metrics("system/memory_rss_mb")]
    assert max(cpu) > 40, cpu  # a busy thread shows (% of one core)
    assert max(rss) - rss[0] > 200, rss  # 300 MB allocated during the run
    steps = [p.step for p in stored.metrics("system/memory_rss_mb")]
    assert steps == list(range(len(steps)))
    disk = [p.value for p in stored.metrics("system/disk_read_mb")]
    assert all(b >= a >= 0 for a, b in zip(disk, disk[1:], strict=False))  # cumulative since the run started


def test_only_top_level_runs_and_never_after_the_run(store_uri, client):
    mbx.autolog(backend=store_uri, capture_console=False, system_metrics_interval=0.05)
    with mbx.start_run(name="parent") as parent, mbx.start_run(name="child") as child:
        _wait_samples(2)
    mbx.flush(10)
    samples = len(client.run(parent.id).metrics("system/cpu_percent"))
    assert samples >= 1
    time.sleep(0.3)  # the sampler goes on, with no open run to write to
    mbx.flush(10)
    assert len(client.run(parent.id).metrics("system/cpu_percent")) == samples
    assert not any(k.startswith("system/") for k in client.run(child.id).metric_keys())


def test_a_run_shorter_than_the_interval_gets_no_sample(store_uri, client):
    mbx.autolog(backend=store_uri, capture_console=False, system_metrics_interval=5)
    with mbx.start_run(name="short") as run:
        time.sleep(0.3)
    mbx.flush(10)
    assert not any(k.startswith("system/") for k in client.run(run.id).metric_keys())


def test_none_disables_system_metrics(store_uri, client):
    mbx.autolog(backend=store_uri, capture_console=False, system_metrics_interval=None)
    sampler = _system_metrics.sampler()
    before = sampler.samples
    with mbx.start_run(name="quiet") as run:
        time.sleep(0.3)
    mbx.flush(10)
    assert not any(k.startswith("system/") for k in client.run(run.id).metric_keys())
    assert sampler.samples == before


def test_bad_interval_is_refused():
    with pytest.raises(ValueError, match="system_metrics_interval"):
        mbx.autolog(frameworks=[], system_metrics_interval=-1)
