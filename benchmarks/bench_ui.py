"""The web UI's API at scale, against a real ``modelbox ui`` process on loopback.

    python benchmarks/bench_ui.py [--runs 100000] [--params 50] [--metrics 20] [--series 1000000] [--repeat 15]

The store (100,000 runs x 50 params x 20 metrics, 3 points per metric, plus one run with a
1,000,000-point series) is written directly through the SQLite store's write path, in large
batches, and kept in ``benchmarks/.cache/`` for the next run (``--regenerate`` rebuilds it).
Measured, as the server reports it (``Server-Timing``) and as the client sees it:

1. the first page of the runs table: 50 rows, 5 param and 5 metric columns, a filter on a
   param and a metric, sorted by a metric (target < 300 ms);
2. a chart request for the 1,000,000-point series, downsampled to <= 2,000 points (< 500 ms);
3. a run page's API calls (run, its 20 metric charts, events, artifacts, console, models,
   lineage), summed (< 300 ms).

Baselines in the same run, alternating with ours: the same runs-table question answered the
way a store without the queryable tables must (every run of the experiment loaded through the
Client, filtered and sorted in Python), and the full 1,000,000-point series as JSON. MLflow is
compared only when ``.venv-peers`` exists. Prints a table; writes ``benchmarks/results/ui.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

PAGE_QUERY = {
    "experiment": "bench", "where": "params.p1 < 0.7 and metrics.m0 > 0.2", "order_by": "metrics.m3 desc", "limit": "50",
    "params": "p0,p1,p2,p3,p4", "metrics": "m0,m1,m2,m3,m4", "top_level": "1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def generate(path: str, runs: int, params: int, metrics: int, series: int) -> float:
    """Write the store through SQLiteStore.write (the same path the exporter uses); seconds taken."""
    from modelbox_autolog._records import Batch, Metric, Param, RunStart, RunUpdate, new_id
    from modelbox_autolog.backends.sqlite import SQLiteStore

    os.makedirs(os.path.dirname(path), exist_ok=True)
    store = SQLiteStore("sqlite:///" + path)
    rng = random.Random(42)
    started = time.perf_counter()
    t0 = time.time() - runs
    per_batch = 500
    for first in range(0, runs, per_batch):
        records: list = []
        for i in range(first, min(first + per_batch, runs)):
            run_id = f"{i:032x}"
            start = t0 + i
            records.append(RunStart(run_id, "bench", f"run-{i}", start, None, {"team": rng.choice(["a", "b", "c"])}))
            records.extend(Param(run_id, f"p{k}", repr(rng.random()) if k % 5 else str(rng.randint(1, 64)))
                           for k in range(params))
            for m in range(metrics):
                base = rng.random()
                records.extend(Metric(run_id, f"m{m}", base + step * 0.01, step, start + step, step) for step in range(3))
            records.append(RunUpdate(run_id, status="finished", end_time=start + rng.uniform(10, 5000)))
        store.write(Batch(new_id(), "bench", records))
    big = "f" * 32
    store.write(Batch(new_id(), "bench", [RunStart(big, "bench", "long-run", t0 - 10, None, {}),
                                          Param(big, "p0", "1"), RunUpdate(big, status="finished", end_time=t0)]))
    chunk = 100_000
    for first in range(0, series, chunk):  # a long series arrives in many batches, as from a real exporter
        points = [Metric(big, "loss", math.exp(-s / series * 5) + 0.01 * math.sin(s / 50) + (5.0 if s == series // 3 else 0.0),
                         s, t0 + s * 0.001, s // 10_000) for s in range(first, min(first + chunk, series))]
        store.write(Batch(new_id(), "bench", points))
    store.close()
    return time.perf_counter() - started


class UiServer:
    def __init__(self, uri: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen([sys.executable, "-m", "modelbox_autolog", "--backend", uri, "ui", "--port", str(self.port)],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/static/app.css", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("modelbox ui did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(20)


def timed(http, path: str, params: dict | None = None) -> tuple[float, float, int]:
    """(server ms from Server-Timing, client ms, response bytes)."""
    t = time.perf_counter()
    r = http.get(path, params=params)
    client_ms = (time.perf_counter() - t) * 1000
    r.raise_for_status()
    server_ms = float(r.headers["server-timing"].split("dur=")[1])
    return server_ms, client_ms, len(r.content)


def run_page_calls(http, run: dict) -> list[str]:
    rid = run["id"]
    paths = [f"/api/v1/runs/{rid}", f"/api/v1/runs/{rid}/events", f"/api/v1/runs/{rid}/artifacts", f"/api/v1/runs/{rid}/console",
             f"/api/v1/runs/{rid}/models", f"/api/v1/runs/{rid}/lineage"]
    paths += [f"/api/v1/runs/{rid}/metrics/{k}?max_points=2000" for k in sorted(run["metrics"])]
    return paths


def python_side_page(uri: str) -> int:
    """The baseline: every run of the experiment through the Client, then filter, sort, page in Python."""
    import modelbox_autolog as mbx

    client = mbx.Client(uri)
    runs = client.runs(experiment="bench")
    summaries = client.metric_summaries([r.id for r in runs], ["m0", "m3"])
    kept = [r for r in runs if isinstance(r.params.get("p1"), float) and r.params["p1"] < 0.7
            and (summaries[r.id].get("m0") and summaries[r.id]["m0"].last > 0.2)]
    kept.sort(key=lambda r: -summaries[r.id]["m3"].last)
    client.close()
    return len(kept[:50])


def summarize(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "p90": ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))],
            "min": ordered[0], "max": ordered[-1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--params", type=int, default=50)
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--series", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--baseline-repeat", type=int, default=3, help="the Python-side baseline is slow: fewer rounds")
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "ui.json"))
    args = parser.parse_args()
    import httpx

    folder = os.path.join(HERE, ".cache", f"ui-{args.runs}x{args.params}x{args.metrics}-{args.series}")
    path = os.path.join(folder, "modelbox.db")
    generated_s = None
    if args.regenerate or not os.path.exists(path + ".done"):
        shutil.rmtree(folder, ignore_errors=True)
        print(f"generating {args.runs:,} runs x {args.params} params x {args.metrics} metrics + a {args.series:,}-point series ...",
              flush=True)
        generated_s = generate(path, args.runs, args.params, args.metrics, args.series)
        open(path + ".done", "w").close()
        print(f"  written in {generated_s:.0f} s ({os.path.getsize(path) / 2**30:.2f} GiB)", flush=True)
    uri = "sqlite:///" + path
    server = UiServer(uri)
    results: dict[str, dict] = {}
    try:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            http.get("/api/v1/runs", params=PAGE_QUERY)  # warm the page cache once, as a server that has been up
            page = http.get("/api/v1/runs", params=PAGE_QUERY).json()
            assert len(page["runs"]) == 50, page
            big = http.get("/api/v1/runs", params={"where": "name = 'long-run'"}).json()["runs"][0]
            typical = http.get(f"/api/v1/runs/{page['runs'][0]['id']}").json()
            samples: dict[str, list] = {k: [] for k in ("page", "page_selective", "page_newest", "count", "chart", "run_page",
                                                         "chart_full", "page_python")}
            for i in range(args.repeat):  # alternate the questions, so drift hits all of them alike
                samples["page"].append(timed(http, "/api/v1/runs", PAGE_QUERY))
                samples["page_selective"].append(timed(http, "/api/v1/runs", {**PAGE_QUERY, "where": "params.p1 < 0.001 and metrics.m0 > 0.2"}))
                samples["page_newest"].append(timed(http, "/api/v1/runs", {**PAGE_QUERY, "order_by": ""}))
                samples["count"].append(timed(http, "/api/v1/runs/count", {k: PAGE_QUERY[k] for k in ("experiment", "where", "top_level")}))
                samples["chart"].append(timed(http, f"/api/v1/runs/{big['id']}/metrics/loss", {"max_points": "2000"}))
                calls = [timed(http, p) for p in run_page_calls(http, typical)]
                samples["run_page"].append((sum(c[0] for c in calls), sum(c[1] for c in calls), sum(c[2] for c in calls)))
                if i < args.baseline_repeat:
                    samples["chart_full"].append(timed(http, f"/api/v1/runs/{big['id']}/metrics/loss", {"max_points": "100000"}))
                    t = time.perf_counter()
                    python_side_page(uri)
                    elapsed = (time.perf_counter() - t) * 1000
                    samples["page_python"].append((elapsed, elapsed, 0))
            chart = http.get(f"/api/v1/runs/{big['id']}/metrics/loss", params={"max_points": "2000"}).json()
            assert chart["total"] == args.series and len(chart["steps"]) <= 2000 and max(chart["values"]) > 5
    finally:
        server.stop()
    targets = {"page": 300, "page_selective": 300, "page_newest": 300, "count": None, "chart": 500, "run_page": 300, "chart_full": None, "page_python": None}
    labels = {
        "page": "runs table, first page (50 rows, 5+5 columns, filter, sort on a metric)",
        "page_selective": "  same, with a selective filter (params.p1 < 0.001: ~100 matches)",
        "page_newest": "  same, newest first (no sort key)",
        "count": "  the total count of matches (a second request; the page does not wait)",
        "chart": f"chart of the {args.series:,}-point series (<= 2,000 points)",
        "run_page": f"run page: all API calls ({len(run_page_calls(None, typical))}) summed",
        "chart_full": "  baseline: 100,000 points of the series as JSON",
        "page_python": "  baseline: runs table answered in Python (load all runs)",
    }
    print(f"\nUI API over {args.runs:,} runs x {args.params} params x {args.metrics} metrics (SQLite), {args.repeat} rounds\n")
    print(f"{'question':<74} {'server ms':>10} {'p90':>8} {'client ms':>10} {'target':>8}")
    for key, rows in samples.items():
        if not rows:
            continue
        server_ms = summarize([r[0] for r in rows])
        client_ms = summarize([r[1] for r in rows])
        results[key] = {"label": labels[key].strip(), "server_ms": server_ms, "client_ms": client_ms, "bytes": rows[0][2],
                        "target_ms": targets[key], "met": None if targets[key] is None else server_ms["median"] < targets[key]}
        target = f"< {targets[key]}" if targets[key] else ""
        print(f"{labels[key]:<74} {server_ms['median']:>10.1f} {server_ms['p90']:>8.1f} {client_ms['median']:>10.1f} {target:>8}")
    ratio = results["page_python"]["server_ms"]["median"] / results["page"]["server_ms"]["median"]
    print(f"\nruns table in SQL vs in Python: {ratio:.0f}x faster; "
          f"load (1-min average) {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    peers = os.path.join(ROOT, ".venv-peers")
    mlflow_note = "measured" if os.path.isdir(peers) else "not measured: .venv-peers does not exist (make peers-setup creates it)"
    print(f"MLflow comparison: {mlflow_note}")
    document = {
        "runs": args.runs, "params": args.params, "metrics": args.metrics, "series_points": args.series, "repeat": args.repeat,
        "store_bytes": os.path.getsize(path), "generated_s": generated_s, "results": results, "sql_vs_python_ratio": ratio,
        "loadavg_1min": os.getloadavg()[0], "cpus": os.cpu_count(), "mlflow": mlflow_note,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(document, handle, indent=2)
    print(f"wrote {args.out}")
    return 0 if all(r["met"] in (None, True) for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
