"""System metrics: one sampler thread records CPU, memory, disk, network and (with NVML) GPU use
into every open top-level run, every ``system_metrics_interval`` seconds.

Metrics (``step`` counts samples, 0, 1, 2...):
  system/cpu_percent           this process and its children (DataLoader workers...), % of one core
  system/host_cpu_percent      the whole machine, % of all cores
  system/memory_rss_mb         resident memory of this process and its children
  system/memory_used_percent   the machine's memory in use
  system/disk_read_mb, system/disk_write_mb   the machine's disks, since the run started
  system/net_sent_mb, system/net_recv_mb      the machine's network, since the run started
  system/gpu<i>/utilization_percent, memory_used_mb, memory_used_percent, power_watts, temperature_c
                               per NVIDIA GPU, when ``nvidia-ml-py`` and a driver are present

A run's first sample comes one interval after it started (a run shorter than the interval gets
none), then one every interval. psutil does the measuring (``pip install
'modelbox-autolog[system]'``); without it, one warning and no system metrics. The sampler only reads
counters the kernel keeps anyway: a sample costs well under a millisecond of CPU (measured by
``benchmarks/bench_frameworks.py sampler``), i.e. far less than 1% of a core at 10 s.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import Any

from . import _config, _run

log = logging.getLogger("modelbox_autolog")

MB = 1024.0 * 1024.0
TICK_S = 1.0  # the thread looks for new runs at least this often (reading nothing else)

# Held while our threads import or initialise libraries (psutil, NVML): a fork waits for it, so a
# child never inherits a module import lock held by a thread that does not exist in it.
_fork_guard = threading.Lock()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_fork_guard.acquire, after_in_parent=_fork_guard.release,
                        after_in_child=_fork_guard.release)


class _Gpus:
    """NVML, initialised once; no devices when the library or a driver is missing."""

    def __init__(self) -> None:
        self.handles: list[Any] = []
        self.nvml: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml = pynvml
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:  # no nvidia-ml-py, no driver, no GPU: nothing to sample
            self.handles = []

    def sample(self, out: dict[str, float]) -> None:
        nvml = self.nvml
        for index, handle in enumerate(self.handles):
            prefix = f"system/gpu{index}/"
            for key, read in (
                ("utilization_percent", lambda h: nvml.nvmlDeviceGetUtilizationRates(h).gpu),
                ("memory_used_mb", lambda h: nvml.nvmlDeviceGetMemoryInfo(h).used / MB),
                ("memory_used_percent", lambda h: 100.0 * (m := nvml.nvmlDeviceGetMemoryInfo(h)).used / m.total),
                ("power_watts", lambda h: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0),
                ("temperature_c", lambda h: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU)),
            ):
                try:
                    out[prefix + key] = float(read(handle))
                except Exception:  # a device without that sensor
                    pass


class Sampler:
    """The sampler thread of this process (restarted lazily after a fork)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._psutil: Any = None
        self._process: Any = None
        self._cpu_seen: dict[int, tuple[float, float]] = {}  # pid -> (create_time, cpu seconds)
        self._last_wall = 0.0
        self._gpus: _Gpus | None = None
        self._baselines: weakref.WeakKeyDictionary[Any, tuple[float, ...]] = weakref.WeakKeyDictionary()
        self._unavailable = False  # psutil is missing: said once, never tried again
        self._stopping = False
        self.samples = 0
        self.cpu_seconds = 0.0  # CPU time the sampler thread spent sampling and queueing

    # ------------------------------------------------------------------ lifecycle
    def prepare(self) -> bool:
        """Import psutil and initialise NVML (autolog's warm-up thread calls this before any fit)."""
        if self._psutil is not None:
            return True
        with _fork_guard:
            if self._psutil is not None:
                return True
            try:
                import psutil
            except ImportError:
                return False
            self._gpus = _Gpus()  # NVML calls go through ctypes, which releases the GIL
            self._process = psutil.Process()
            self._psutil = psutil
        return True

    def ensure_started(self, config: _config.Config) -> None:
        """Start the thread, once per process, when system metrics are on (cheap when it runs)."""
        thread = self._thread
        if thread is not None and self._pid == os.getpid() and not self._stopping:
            return
        if not config.system_metrics_interval or self._unavailable or not _run.is_logging_process(config):
            return
        with self._lock:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive() and not self._stopping:
                return
            self._pid = os.getpid()
            self._stopping = False
            self._cpu_seen = {}
            self._last_wall = 0.0
            self._baselines = weakref.WeakKeyDictionary()
            self._due = weakref.WeakKeyDictionary()
            self._thread = threading.Thread(target=self._loop, name="modelbox-system-metrics", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """End the thread (``mbx.shutdown``); the next ``autolog()`` starts it again."""
        thread = self._thread
        if thread is None or not thread.is_alive() or self._pid != os.getpid():
            return
        self._stopping = True
        self._wake.set()
        if thread is not threading.current_thread():
            thread.join(timeout)

    def _loop(self) -> None:
        from ._exporter import _lower_priority

        _lower_priority()
        pid = os.getpid()
        if os.getpid() != self._pid or not self.prepare():
            self._unavailable = True
            config = _config.current()
            if not config.silent:
                log.warning("modelbox-autolog: system metrics need psutil (pip install 'modelbox-autolog[system]'); "
                            "pass system_metrics_interval=None to silence this")
            return
        if self._process.pid != pid:  # prepared before a fork
            self._process = self._psutil.Process()
        with _fork_guard:
            self._prime()
        while os.getpid() == pid:
            interval = _config.current().system_metrics_interval
            self._wake.wait(min(interval, TICK_S) if interval else TICK_S)  # new runs are noticed within a tick
            self._wake.clear()
            if self._stopping:
                return
            if not interval:
                continue
            try:
                self.sample_now()
            except Exception as exc:  # never let the thread die: report once, go on sampling
                from ._patching import safe

                safe("system-metrics", _reraise, exc)

    # ------------------------------------------------------------------ sampling
    def _prime(self) -> None:
        self._cpu_total(self._processes())
        self._psutil.cpu_percent(None)
        self._last_wall = time.monotonic()

    def _processes(self) -> list[Any]:
        """This process and its children (one scan of the process table per sample)."""
        procs = [self._process]
        try:
            procs += self._process.children(recursive=True)
        except self._psutil.Error:
            pass
        return procs

    def _cpu_total(self, procs: list[Any]) -> float:
        """CPU seconds used since the last sample by ``procs`` (a child born since then: all of its time)."""
        psutil = self._psutil
        seen: dict[int, tuple[float, float]] = {}
        delta = 0.0
        for proc in procs:
            try:
                with proc.oneshot():
                    created = proc.create_time()
                    times = proc.cpu_times()
            except psutil.Error:
                continue
            used = times.user + times.system
            before = self._cpu_seen.get(proc.pid)
            if before is not None and before[0] == created:
                delta += used - before[1]
            elif self._last_wall:  # a child born since the last sample: all of its time is new
                delta += used
            seen[proc.pid] = (created, used)
        self._cpu_seen = seen
        return delta

    def _memory_rss(self, procs: list[Any]) -> float:
        psutil = self._psutil
        total = 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total / MB

    def read(self) -> tuple[dict[str, float], tuple[float, ...]]:
        """One sample: the instantaneous values, and the machine's cumulative I/O counters."""
        psutil = self._psutil
        now = time.monotonic()
        procs = self._processes()
        cpu = self._cpu_total(procs)
        elapsed = now - self._last_wall if self._last_wall else 0.0
        self._last_wall = now
        values: dict[str, float] = {
            "system/host_cpu_percent": psutil.cpu_percent(None),
            "system/memory_rss_mb": self._memory_rss(procs),
            "system/memory_used_percent": psutil.virtual_memory().percent,
        }
        if elapsed > 0:
            values["system/cpu_percent"] = 100.0 * cpu / elapsed
        counters = self._counters()
        if self._gpus is not None:
            self._gpus.sample(values)
        return values, counters

    def _counters(self) -> tuple[float, ...]:
        """The machine's cumulative disk and network counters, in MB (NaN where it has none)."""
        psutil = self._psutil
        disk = net = None
        try:
            disk = psutil.disk_io_counters()
        except Exception:
            pass
        try:
            net = psutil.net_io_counters()
        except Exception:
            pass
        nan = float("nan")
        return (disk.read_bytes / MB if disk else nan, disk.write_bytes / MB if disk else nan,
                net.bytes_sent / MB if net else nan, net.bytes_recv / MB if net else nan)

    def sample_now(self, force: bool = False) -> int:
        """Sample the open top-level runs that are due (each one ``interval`` after it started, then
        every ``interval``; ``force``: all of them now); returns how many runs got a sample."""
        started = time.thread_time()
        runs = [r for r in _run.open_runs() if r.parent_run_id is None and r.config.system_metrics_interval]
        if not runs:
            self._prime()  # the next run's first CPU figure covers the time since now, not since long ago
            self.cpu_seconds += time.thread_time() - started
            return 0
        now = time.time()
        fresh = [r for r in runs if r not in self._baselines]
        if fresh:  # disk and network count from (about) the run's start
            counters = self._counters()
            for run in fresh:
                self._baselines[run] = counters
        due = [r for r in runs if force or now >= self._due.get(r, r.start_time + r.config.system_metrics_interval)]
        if not due:
            self.cpu_seconds += time.thread_time() - started
            return 0
        values, counters = self.read()
        stamp = time.time()
        for run in due:
            self._due[run] = now + run.config.system_metrics_interval
            metrics = dict(values)
            for key, current, then in zip(("disk_read_mb", "disk_write_mb", "net_sent_mb", "net_recv_mb"), counters,
                                          self._baselines[run], strict=True):
                if current == current:  # not NaN: this machine has the counter
                    metrics["system/" + key] = current - then
            run.log_metrics(metrics, timestamp=stamp)
        self.samples += 1
        self.cpu_seconds += time.thread_time() - started
        return len(due)


def _reraise(exc: Exception) -> None:
    raise exc


_sampler = Sampler()


def prepare(config: _config.Config) -> None:
    """autolog()'s warm-up (off the caller's thread): the imports, before the first fit."""
    if config.system_metrics_interval and _run.is_logging_process(config):
        _sampler.prepare()


def ensure_started(config: _config.Config) -> None:
    """Called when a run opens: the sampler runs while system metrics are on."""
    _sampler.ensure_started(config)


def stop() -> None:
    _sampler.stop()


def sampler() -> Sampler:
    return _sampler
