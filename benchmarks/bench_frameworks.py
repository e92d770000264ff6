"""Autologging overhead on real framework workloads: plain vs. ``mbx.autolog()``, alternating.

    python benchmarks/bench_frameworks.py sklearn [keras torch lightning xgboost tensorboard transformers ...] [--reps 5]
    python benchmarks/bench_frameworks.py sampler      # the system-metrics sampler's CPU cost

Each workload lives in ``benchmarks/workloads/<name>.py`` and defines ``prepare()`` -> state and
``train(state)``; ``VARIANTS`` (optional) maps extra variant names to autolog keyword arguments.
Plain and autologged runs alternate in one process (in ABBA order), after one warm-up of each; the table
shows medians, the ratio of medians autolog/plain, and the paired ratio: the median, over
repetitions, of each autologged run divided by the plain run next to it, which cancels the
slow drifts of a shared virtual machine (both runs of a pair see the same machine). Results go to ``benchmarks/results/frameworks-<name>.json``.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
try:  # TensorFlow 2.21 and triton crash when triton comes second (torch's SummaryWriter imports TF)
    import triton  # noqa: F401
except ImportError:
    pass


def measure(name: str, reps: int) -> dict:
    import modelbox_autolog as mbx
    from modelbox_autolog import testing

    workload = importlib.import_module(f"workloads.{name}")
    state = workload.prepare()
    variants = {"autolog": {}, **getattr(workload, "VARIANTS", {})}
    tmp = tempfile.mkdtemp(prefix=f"bench-{name}-")
    times: dict[str, list[float]] = {"plain": [], **{v: [] for v in variants}}

    def once(variant: str, record: bool) -> None:
        if variant == "plain":
            testing.reset()
        else:
            testing.reset()
            mbx.autolog(backend=f"sqlite:///{tmp}/{variant}.db", experiment=f"bench-{name}", silent=True, **variants[variant])
        gc.collect()
        started = time.perf_counter()
        workload.train(state)
        elapsed = time.perf_counter() - started
        if variant != "plain":
            mbx.flush(60)  # the cost of storing is paid off the training thread, but must finish
        if record:
            times[variant].append(elapsed)

    for variant in times:
        once(variant, record=False)  # warm-up
    for rep in range(reps):
        order = list(times) if rep % 2 == 0 else list(reversed(times))  # ABBA: no variant always goes first
        for variant in order:
            once(variant, record=True)
    testing.reset()
    plain = statistics.median(times["plain"])
    rows = []
    for variant, samples in times.items():
        med = statistics.median(samples)
        paired = statistics.median(a / b for a, b in zip(samples, times["plain"], strict=True))
        rows.append({
            "variant": variant, "median_s": med, "min_s": min(samples), "max_s": max(samples),
            "ratio": med / plain, "paired_ratio": paired, "samples": samples,
        })
    return {"workload": name, "description": getattr(workload, "DESCRIPTION", ""), "reps": reps, "rows": rows}


def measure_sampler(samples: int = 300, interval: float = 0.02) -> dict:
    """CPU time the system-metrics sampler thread spends per sample (its own thread time), with a
    run open, and what that is per hour of training at the default interval (10 s), against one
    core-hour (3,600 CPU seconds) as the baseline."""
    import modelbox_autolog as mbx
    from modelbox_autolog import _config, _system_metrics, testing

    testing.reset()
    tmp = tempfile.mkdtemp(prefix="bench-sampler-")
    mbx.autolog(backend=f"sqlite:///{tmp}/s.db", experiment="bench-sampler", silent=True, system_metrics_interval=interval)
    sampler = _system_metrics.sampler()
    per_sample: list[float] = []
    with mbx.start_run(name="sampler"):
        deadline = time.monotonic() + 120
        while sampler.samples == 0 and time.monotonic() < deadline:  # started, primed, first sample
            time.sleep(0.01)
        for _ in range(samples):
            before, cpu = sampler.samples, sampler.cpu_seconds
            while sampler.samples == before and time.monotonic() < deadline:
                time.sleep(interval / 4)
            per_sample.append(sampler.cpu_seconds - cpu)
    mbx.flush(30)
    testing.reset()
    default = _config.DEFAULT_SYSTEM_METRICS_INTERVAL_S
    median = statistics.median(per_sample)
    per_hour = median * 3600.0 / default
    return {"workload": "sampler", "samples": len(per_sample), "median_cpu_ms_per_sample": median * 1e3,
            "p90_cpu_ms_per_sample": sorted(per_sample)[int(0.9 * len(per_sample))] * 1e3,
            "default_interval_s": default, "cpu_s_per_hour": per_hour, "share_of_one_core": per_hour / 3600.0,
            "samples_raw": per_sample}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workloads", nargs="+")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    for name in args.workloads:
        if name == "sampler":
            result = measure_sampler()
            print(f"\nsampler: {result['samples']} samples with a run open")
            print(f"CPU per sample: median {result['median_cpu_ms_per_sample']:.3f} ms, p90 {result['p90_cpu_ms_per_sample']:.3f} ms")
            print(f"at the default {result['default_interval_s']:.0f} s: {result['cpu_s_per_hour']:.2f} CPU s per hour of "
                  f"training = {100 * result['share_of_one_core']:.4f}% of one core (baseline: 3,600 CPU s, one core-hour)")
            with open(os.path.join(HERE, "results", "frameworks-sampler.json"), "w") as handle:
                json.dump(result, handle, indent=2)
            continue
        result = measure(name, args.reps)
        print(f"\n{name}: {result['description']}  ({args.reps} alternating repetitions)")
        print(f"{'variant':<14}{'median s':>10}{'min s':>10}{'max s':>10}{'ratio':>9}{'paired':>9}")
        for row in result["rows"]:
            print(f"{row['variant']:<14}{row['median_s']:>10.3f}{row['min_s']:>10.3f}{row['max_s']:>10.3f}"
                  f"{row['ratio']:>8.3f}x{row['paired_ratio']:>8.3f}x")
        with open(os.path.join(HERE, "results", f"frameworks-{name}.json"), "w") as handle:
            json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
