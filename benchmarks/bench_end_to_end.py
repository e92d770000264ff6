"""End-to-end cost of autologging many small scikit-learn fits, in fresh processes.

    python benchmarks/bench_end_to_end.py [--pairs 20] [--workloads pipelines cv]

Workloads:
* ``pipelines``: the 5 Pipeline fits of ``workloads/sklearn.py`` (StandardScaler + LogisticRegression
  on 20,000 x 20 float32, ~12 ms each), models logged;
* ``cv``: 200 ``cross_val_score`` folds of a small model (40 calls, cv=5, LogisticRegression on
  400 x 10);
* ``iris``: 5 ``SVC(probability=True)`` fits on iris (a few ms each), diagnostic plots on (the
  default): a short script whose plots take longer to draw than its training;
* ``iris-noplots``: ``iris`` with ``log_plots=False``;
* ``pipelines-noplots``: ``pipelines`` with ``log_plots=False`` (what the diagnostic plots cost);
* ``pipelines-nometrics``: ``pipelines`` with ``log_plots=False`` and
  ``options={"sklearn": {"log_training_metrics": False}}`` (what the training metrics cost).

Every measurement is a fresh process (autologgers patch globally; a script runs once), shaped like
a script: ``import modelbox_autolog; mbx.autolog()`` into a fresh SQLite store first (timed as
``setup``), then numpy and scikit-learn imported and the data prepared (not timed), then ``train``
(the training calls alone) and
``end_to_end`` (training plus ``mbx.flush()``: until everything is stored, as the script's exit
would wait for it: the records, not the diagnostic plots, which the detached plot worker draws and
stores after); ``cpu`` is the process's CPU time over the same span (all threads: less
sensitive than wall time to a busy machine), and ``process`` the whole script's wall time seen
from outside (interpreter start-up, imports, ``autolog()``, exit). No logging and autolog
alternate, pair by pair, in a rotating order (the next measurement starts once the plot worker of
the previous one has stored its plots: ``plots_after_exit_s``, how long after the script's exit that
took, is reported, not counted); the
table shows medians, the ratio of medians, and the paired ratio (the median of each autologged
measurement divided by the no-logging one beside it) with a 90% bootstrap interval. Results go
to ``benchmarks/results/end_to_end.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results", "end_to_end.json")
TARGETS = {"pipelines": 1.10, "cv": 1.25, "iris": 1.10}  # end-to-end, autolog / no logging (issue 13)
WORKLOADS = ("pipelines", "cv", "iris", "iris-noplots", "pipelines-noplots", "pipelines-nometrics")
CONFIDENCE = 0.90


# ---------------------------------------------------------------------------------------- workloads
def prepare(workload: str) -> Any:
    import numpy as np

    if workload.startswith("pipelines"):
        sys.path.insert(0, HERE)
        from workloads import sklearn as pipelines

        return pipelines.prepare()
    if workload.startswith("iris"):
        from sklearn.datasets import load_iris
        from sklearn.svm import SVC  # noqa: F401

        X, y = load_iris(return_X_y=True)
        return {"X": X, "y": y}
    import sklearn.linear_model  # noqa: F401 - imported before timing, as a script would
    import sklearn.model_selection  # noqa: F401

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 10))
    y = (X[:, :2].sum(axis=1) + rng.normal(scale=0.5, size=400) > 0).astype(np.int64)
    return {"X": X, "y": y}


def train(workload: str, state: Any) -> None:
    if workload.startswith("pipelines"):
        from workloads import sklearn as pipelines

        pipelines.train(state)
        return
    if workload.startswith("iris"):
        import warnings

        from sklearn.svm import SVC

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # probability=True is deprecated in 1.9
            for C in (0.1, 0.3, 1.0, 3.0, 10.0):
                SVC(C=C, probability=True).fit(state["X"], state["y"])
        return
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    for seed in range(40):
        cross_val_score(LogisticRegression(C=1.0 + seed / 10), state["X"], state["y"], cv=5)


# ---------------------------------------------------------------------------------------- worker
def worker(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in this fresh process; printed as JSON for the driver."""
    record: dict[str, Any] = {"workload": args.workload, "mode": args.mode}
    started = time.perf_counter()
    if args.mode == "autolog":  # as a script starts: autolog() first, then the imports and the data
        import modelbox_autolog as mbx

        variant: dict[str, Any] = {}
        if args.workload.endswith(("-noplots", "-nometrics")):  # (iris-noplots too)
            variant["log_plots"] = False
        if args.workload.endswith("-nometrics"):
            variant["options"] = {"sklearn": {"log_training_metrics": False}}
        mbx.autolog(backend=f"sqlite:///{args.store}/modelbox.db", experiment=f"e2e-{args.workload}", **variant)
    record["setup_s"] = time.perf_counter() - started
    state = prepare(args.workload)
    started = time.perf_counter()
    cpu_started = time.process_time()
    train(args.workload, state)
    record["train_s"] = time.perf_counter() - started
    if args.mode == "autolog":
        record["flushed"] = mbx.flush(600)
    record["end_to_end_s"] = time.perf_counter() - started
    record["cpu_s"] = time.process_time() - cpu_started  # every thread of the process, train + flush
    return record


def measure(workload: str, mode: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="e2e-") as store:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]),
               "MODELBOX_JOURNAL_DIR": os.path.join(store, "journal")}
        env.pop("MODELBOX_AUTOLOG_TESTING", None)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", workload, mode, store],
                              capture_output=True, text=True, env=env, cwd=store, timeout=900)
        process_s = time.perf_counter() - started  # the whole script: start-up, imports, exit
        if done.returncode != 0:
            raise RuntimeError(f"{workload}/{mode} failed:\n{done.stderr[-3000:]}")
        record = json.loads(done.stdout.strip().splitlines()[-1])
        record["process_s"] = process_s
        record["plots_after_exit_s"] = _plots_delivered(os.path.join(store, "journal"))
        if mode == "autolog":
            import modelbox_autolog as mbx

            runs = mbx.Client(f"sqlite:///{store}/modelbox.db").runs()
            record["runs"] = len(runs)
            record["models"] = sum(len(r.models()) for r in runs)
        return record


def _plots_delivered(journal: str, timeout: float = 300.0) -> float | None:
    """Seconds until the detached plot worker has stored every plot job the script left (None:
    there were none). The next measurement starts only then, so it never shares the machine."""
    import glob

    started = time.perf_counter()
    if not glob.glob(os.path.join(journal, "*", "plots", "*.job")):
        return None
    while glob.glob(os.path.join(journal, "*", "plots", "*.job")) and time.perf_counter() - started < timeout:
        time.sleep(0.05)
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------- driver
def bootstrap_median_interval(values: list[float], rounds: int = 2000) -> tuple[float, float]:
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(rounds))
    tail = (1 - CONFIDENCE) / 2
    return medians[int(tail * rounds)], medians[int((1 - tail) * rounds) - 1]


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for workload in sorted({r["workload"] for r in records}):
        pairs = [r for r in records if r["workload"] == workload]
        plain = [p["plain"] for p in pairs]
        ours = [p["autolog"] for p in pairs]
        row: dict[str, Any] = {"pairs": len(pairs), "target_end_to_end": TARGETS.get(workload)}
        for measure_ in ("train_s", "end_to_end_s", "cpu_s", "process_s"):
            a = [r[measure_] for r in plain]
            b = [r[measure_] for r in ours]
            ratios = [y / x for x, y in zip(a, b, strict=True)]
            row[measure_] = {
                "plain_median": statistics.median(a), "autolog_median": statistics.median(b),
                "ratio_of_medians": statistics.median(b) / statistics.median(a),
                "paired": statistics.median(ratios), "paired_interval": list(bootstrap_median_interval(ratios)),
            }
        row["setup_s"] = statistics.median(r["setup_s"] for r in ours)
        row["runs"] = statistics.median(r["runs"] for r in ours)
        row["models"] = statistics.median(r["models"] for r in ours)
        row["all_flushed"] = all(r["flushed"] for r in ours)
        delivered = [r["plots_after_exit_s"] for r in ours if r.get("plots_after_exit_s") is not None]
        row["plots_after_exit_s"] = statistics.median(delivered) if delivered else None
        out[workload] = row
    return out


def table(summary: dict[str, Any]) -> str:
    lines = ["| workload | measure | no logging (median s) | autolog (median s) | ratio of medians | paired [90%] | target |",
             "|---|---|---|---|---|---|---|"]
    for workload, row in summary.items():
        for measure_, label in (("train_s", "training calls"), ("end_to_end_s", "end-to-end (+ flush)"),
                                ("cpu_s", "CPU time, all threads (train + flush)"),
                                ("process_s", "whole script (start-up, imports, autolog(), exit)")):
            m = row[measure_]
            low, high = m["paired_interval"]
            target = f"≤ {row['target_end_to_end']:.2f}x" if measure_ == "end_to_end_s" and row['target_end_to_end'] else ""
            lines.append(f"| {workload} | {label} | {m['plain_median']:.4f} | {m['autolog_median']:.4f} | "
                         f"{m['ratio_of_medians']:.3f}x | {m['paired']:.3f}x [{low:.3f}-{high:.3f}] | {target} |")
        plots = row.get("plots_after_exit_s")
        plots_note = f"; plots stored {plots:.1f} s after exit (median)" if plots is not None else ""
        lines.append(f"| {workload} | stored per script | | {row['runs']:g} runs, {row['models']:g} models | | "
                     f"setup {row['setup_s'] * 1000:.0f} ms | all flushed: {row['all_flushed']}{plots_note} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", nargs=3, metavar=("WORKLOAD", "MODE", "STORE"))
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--workloads", nargs="+", default=["pipelines", "cv"], choices=WORKLOADS)
    parser.add_argument("--output", default=RESULTS)
    args = parser.parse_args()
    if args.worker:
        args.workload, args.mode, args.store = args.worker
        print(json.dumps(worker(args)))
        return

    records: list[dict[str, Any]] = []
    load_before = os.getloadavg()[0]
    started = time.time()
    for workload in args.workloads:
        measure(workload, "plain")  # warm the page cache and the interpreter's .pyc files
        measure(workload, "autolog")
    for index in range(args.pairs):
        for workload in args.workloads:
            order = ("plain", "autolog") if index % 2 == 0 else ("autolog", "plain")
            pair = {mode: measure(workload, mode) for mode in order}
            records.append({"workload": workload, **pair})
            print(f"pair {index + 1}/{args.pairs} {workload}: plain {pair['plain']['end_to_end_s']:.3f} s, "
                  f"autolog {pair['autolog']['end_to_end_s']:.3f} s", file=sys.stderr)
    summary = summarise(records)
    result = {
        "benchmark": "end_to_end", "date": time.strftime("%Y-%m-%d"), "duration_s": round(time.time() - started),
        "load_average_before": load_before, "load_average_after": os.getloadavg()[0], "cpus": os.cpu_count(),
        "python": sys.version.split()[0], "summary": summary, "records": records,
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(result, handle, indent=1)
    print(table(summary))
    print(f"\nload average {load_before:.2f} -> {result['load_average_after']:.2f}; {result['duration_s']} s; "
          f"written to {os.path.relpath(args.output, ROOT)}")


if __name__ == "__main__":
    main()
