"""What access control and the richer change feed cost on ingest, against the code before them.

    python benchmarks/bench_access.py [--baseline REV] [--rounds 3] [--batches 40] [--no-postgres]

1. The store write path alone (SQLite; PostgreSQL with its default, durable settings): the same
   exporter-shaped batches (5,000 metric points over 10 series, 5 params and 2 progress
   updates each, one run) written by this tree's store and by the store of ``--baseline`` (a
   git revision, extracted with ``git archive``), alternating in fresh processes, round after
   round. The change feed now carries params, folded run updates and metric ranges, plus the
   actor: one change row per batch and run either way.
2. A server (SQLite store) taking batched writes from 4 writer processes
   (``bench_server.py``'s writer: 5,000-point batches) in each authentication mode: open (no
   token), one-token (``--token``), per-user writer token (a lookup in the store and the
   ownership check on every WriteBatch); and the baseline's server in one-token mode. Then
   the per-call cost where it shows most: 2,000 small unary calls (GetRun) one after another.
3. The check itself, in process (no network, no noise from other processes): authentication,
   the policy and running as the caller, per call, in each mode.
Ratios are ours / baseline of the same round, reported as the median over rounds (the machine
is shared and noisy: paired, alternating measurements). Prints a table; writes
``benchmarks/results/access.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if "--store-worker" not in sys.argv:  # a worker imports the tree it was given (PYTHONPATH), nothing else
    sys.path.insert(0, ROOT)

POINTS = 5_000
SERIES = 10


# ---------------------------------------------------------------------- 1. one store, one tree (a process of its own)
def store_worker(tree: str, uri: str, batches: int, out: str) -> None:
    """Runs with PYTHONPATH=tree: that tree's store writes ``batches`` batches; seconds per batch."""
    import modelbox_autolog
    from modelbox_autolog._records import Batch, Param, RunStart, RunUpdate, new_id

    assert os.path.realpath(modelbox_autolog.__file__).startswith(os.path.realpath(tree) + os.sep), modelbox_autolog.__file__

    if uri.startswith("sqlite"):
        from modelbox_autolog.backends.sqlite import SQLiteStore

        store = SQLiteStore(uri)
    else:
        from modelbox_autolog.backends.postgres import PostgresStore

        store = PostgresStore(uri, artifacts=None)
    run_id = new_id()
    store.write(Batch(new_id(), "bench", [RunStart(run_id, "bench-access", None, time.time())]))
    steps = POINTS // SERIES
    prepared = []
    for b in range(batches):
        now = time.time()
        records: list = [(run_id, f"m{k}", 0.001 * s, b * steps + s, now, None) for s in range(steps) for k in range(SERIES)]
        records += [Param(run_id, f"p{b}.{i}", str(i)) for i in range(5)]
        records += [RunUpdate(run_id, progress=b / batches), RunUpdate(run_id, progress=(b + 0.5) / batches)]
        prepared.append(Batch(new_id(), "bench", records))
    seconds = []
    cpu0 = time.process_time()
    for batch in prepared:
        t0 = time.perf_counter()
        store.write(batch)
        seconds.append(time.perf_counter() - t0)
    cpu = time.process_time() - cpu0
    rows = len(store.changes(0, 1_000_000))
    store.close()
    with open(out, "w") as handle:
        json.dump({"seconds": seconds, "cpu_s": cpu, "change_rows": rows}, handle)


def run_store(tree: str, uri: str, batches: int, work: str) -> dict:
    out = os.path.join(work, f"store-{time.time_ns()}.json")
    env = {**os.environ, "PYTHONPATH": tree}
    subprocess.run([sys.executable, os.path.join(HERE, "bench_access.py"), "--store-worker", tree, uri, str(batches), out],
                   env=env, check=True, timeout=1800, cwd=work)
    result = json.load(open(out))
    total = sum(result["seconds"])
    return {"points_per_s": batches * POINTS / total, "batch_p50_ms": statistics.median(result["seconds"]) * 1e3,
            "cpu_us_per_point": result["cpu_s"] / (batches * POINTS) * 1e6, "change_rows": result["change_rows"]}


def bench_stores(args, trees: dict[str, str], cluster, work: str) -> list[dict]:
    rows = []
    engines = ["sqlite"] + (["postgresql"] if cluster is not None else [])
    for engine in engines:
        for round_ in range(args.rounds):
            pair = {}
            for name in (("ours", "baseline") if round_ % 2 == 0 else ("baseline", "ours")):
                folder = tempfile.mkdtemp(prefix=f"{engine}-{name}-", dir=work)
                uri = f"sqlite:///{folder}/modelbox.db" if engine == "sqlite" else cluster.uri(cluster.new_database())
                pair[name] = run_store(trees[name], uri, args.batches, work)
            row = {"engine": engine, "round": round_, "ours": pair["ours"], "baseline": pair["baseline"],
                   "ratio": pair["ours"]["points_per_s"] / pair["baseline"]["points_per_s"],
                   "cpu_ratio": pair["ours"]["cpu_us_per_point"] / pair["baseline"]["cpu_us_per_point"]}
            rows.append(row)
            print(f"  store {engine:<10} round {round_}: ours {pair['ours']['points_per_s']:>10,.0f} points/s "
                  f"{pair['ours']['cpu_us_per_point']:.3f} µs CPU/point ({pair['ours']['change_rows']} change rows), baseline "
                  f"{pair['baseline']['points_per_s']:>10,.0f} {pair['baseline']['cpu_us_per_point']:.3f} µs "
                  f"({pair['baseline']['change_rows']} rows)  ratio {row['ratio']:.3f}, CPU {row['cpu_ratio']:.3f}", flush=True)
    return rows


# ---------------------------------------------------------------------- 2. servers by authentication mode
def make_token(store: str, user: str, role: str) -> str:
    done = subprocess.run([sys.executable, "-m", "modelbox_autolog", "server", "token", "create", user, "--role", role,
                           "--store", store], capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": ROOT})
    return done.stdout.strip()


def bench_modes(args, trees: dict[str, str], work: str) -> list[dict]:
    import bench_server
    from bench_server import Replica, run_writers

    modes = ["ours open", "ours one-token", "ours per-user writer", "baseline one-token"]
    rows = []
    for round_ in range(args.rounds):
        order = modes if round_ % 2 == 0 else list(reversed(modes))
        for mode in order:
            folder = tempfile.mkdtemp(prefix="mode-", dir=work)
            store = f"sqlite:///{folder}/modelbox.db"
            tree = trees["baseline" if mode.startswith("baseline") else "ours"]
            extra_env = {"PYTHONPATH": tree}
            client_token = None
            if mode.endswith("one-token"):
                client_token = "bench-shared-token"
                extra_env["MODELBOX_TOKEN"] = client_token  # the server's --token default
            elif mode.endswith("writer"):
                client_token = make_token(store, "bench", "writer")
            here = os.getcwd()
            os.chdir(folder)  # `python -m` puts the working directory first on sys.path: never our tree for the baseline
            try:
                replica = Replica(folder, store, os.path.join(folder, "artifacts"), extra_env)
            finally:
                os.chdir(here)
            with open(replica.log.name, encoding="utf-8", errors="replace") as handle:
                started = handle.read()
            assert ("tokens required" in started or "no token" in started) == mode.startswith("ours"), (mode, started)
            saved = os.environ.get("MODELBOX_TOKEN")
            if client_token:
                os.environ["MODELBOX_TOKEN"] = client_token
            else:
                os.environ.pop("MODELBOX_TOKEN", None)
            try:
                cpu0 = replica.cpu_s()
                result = run_writers([replica.uri], args.writers, max(2, args.batches // 5), folder)
                cpu = replica.cpu_s() - cpu0
                result["small_call_p50_us"] = small_calls(replica.uri, result["run_ids"][0])
            finally:
                replica.stop()
                if saved is None:
                    os.environ.pop("MODELBOX_TOKEN", None)
                else:
                    os.environ["MODELBOX_TOKEN"] = saved
            result.pop("run_ids")
            row = {"mode": mode, "round": round_, **result, "server_cpu_s_per_M": cpu / (result["points"] / 1e6)}
            rows.append(row)
            print(f"  server {mode:<22} round {round_}: {row['points_per_s']:>10,.0f} points/s  p50 {row['write_p50_ms']:6.1f} ms"
                  f"  p99 {row['write_p99_ms']:6.1f} ms  server CPU {row['server_cpu_s_per_M']:.2f} s/M"
                  f"  GetRun p50 {row['small_call_p50_us']:.0f} µs", flush=True)
    assert bench_server.BATCH_POINTS == POINTS
    return rows


def small_calls(uri: str, run_id: str, count: int = 2000) -> float:
    """Median latency (µs) of ``count`` GetRun calls in a row, with this process's MODELBOX_TOKEN."""
    import grpc

    from modelbox_autolog.proto.modelbox.v1 import service_pb2 as spb
    from modelbox_autolog.proto.modelbox.v1 import service_pb2_grpc as sgrpc

    token = os.environ.get("MODELBOX_TOKEN")
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with grpc.insecure_channel(uri[len("grpc://"):]) as channel:
        stub = sgrpc.ModelBoxStub(channel)
        request = spb.GetRunRequest(run_id=run_id)
        stub.GetRun(request, metadata=metadata, timeout=30)
        latencies = []
        for _ in range(count):
            t0 = time.perf_counter()
            stub.GetRun(request, metadata=metadata, timeout=30)
            latencies.append(time.perf_counter() - t0)
    return statistics.median(latencies) * 1e6


def check_cost(work: str, calls: int = 50_000) -> dict[str, float]:
    """µs per call of what the interceptor adds before a method runs, in each mode (best of 5)."""
    from modelbox_autolog._actor import acting_as
    from modelbox_autolog.backends.sqlite import SQLiteStore
    from modelbox_autolog.server.access import Authenticator, bearer, create_token
    from modelbox_autolog.server.policy import RPC_RULES, Policy

    store = SQLiteStore(f"sqlite:///{work}/check/modelbox.db")
    empty = SQLiteStore(f"sqlite:///{work}/check-open/modelbox.db")
    token, _ = create_token(store, "bench", "writer")
    policy = Policy(store)
    modes = {"open": (Authenticator(empty), None), "one-token": (Authenticator(store, "shared-secret"), "Bearer shared-secret"),
             "per-user token": (Authenticator(store), f"Bearer {token}")}
    out = {}
    for mode, (authenticator, header) in modes.items():
        def call(authenticator=authenticator, header=header) -> None:
            principal = authenticator.authenticate(bearer(header))
            policy.authorize(principal, RPC_RULES["GetRun"])
            with acting_as(principal.name):
                pass

        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(calls // 5):
                call()
            best = min(best, (time.perf_counter() - t0) / (calls // 5))
        out[mode] = best * 1e6
    store.close()
    empty.close()
    return out


def extract(rev: str, work: str) -> str:
    folder = os.path.join(work, "baseline-tree")
    os.makedirs(folder)
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev, "modelbox_autolog"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return folder


def summarise(store_rows: list[dict], mode_rows: list[dict]) -> dict:
    summary: dict = {"store": {}, "server": {}}
    for engine in sorted({r["engine"] for r in store_rows}):
        ratios = [r["ratio"] for r in store_rows if r["engine"] == engine]
        cpu = [r["cpu_ratio"] for r in store_rows if r["engine"] == engine]
        summary["store"][engine] = {"median_ratio": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
                                    "median_cpu_ratio": statistics.median(cpu)}
    rounds = sorted({r["round"] for r in mode_rows})
    for mode in sorted({r["mode"] for r in mode_rows}):
        ratios = []
        for round_ in rounds:
            ours = [r for r in mode_rows if r["round"] == round_ and r["mode"] == mode]
            base = [r for r in mode_rows if r["round"] == round_ and r["mode"] == "baseline one-token"]
            if ours and base:
                ratios.append(ours[0]["points_per_s"] / base[0]["points_per_s"])
        rows = [r for r in mode_rows if r["mode"] == mode]
        summary["server"][mode] = {"median_points_per_s": statistics.median(r["points_per_s"] for r in rows),
                                   "median_p50_ms": statistics.median(r["write_p50_ms"] for r in rows),
                                   "median_small_call_p50_us": statistics.median(r["small_call_p50_us"] for r in rows),
                                   "median_ratio_vs_baseline_one_token": statistics.median(ratios) if ratios else None}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store-worker", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--baseline", default="main", help="git revision to compare with (default: main)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=100, help="batches per store run (a fifth per writer in part 2)")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--parts", nargs="+", default=["store", "server", "check"], choices=["store", "server", "check"])
    args = parser.parse_args()
    if args.store_worker:
        tree, uri, batches, out = args.store_worker
        store_worker(tree, uri, int(batches), out)
        return
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the PostgreSQL cluster on the way out
    work = tempfile.mkdtemp(prefix="bench-access-")
    os.environ.pop("MODELBOX_TOKEN", None)  # each mode sets its own
    cluster = None
    try:
        trees = {"ours": ROOT, "baseline": extract(args.baseline, work)}
        if not args.no_postgres:
            from tests.teamserver.components import PostgresCluster, postgres_bin

            bindir = postgres_bin()
            if bindir is not None:
                cluster = PostgresCluster(bindir)
                cluster.init(durable=True)
                cluster.start()
        load = os.getloadavg()[0]
        print(f"baseline {args.baseline}; load average {load:.1f} on {os.cpu_count()} CPUs at the start", flush=True)
        store_rows = bench_stores(args, trees, cluster, work) if "store" in args.parts else []
        mode_rows = bench_modes(args, trees, work) if "server" in args.parts else []
        summary = summarise(store_rows, mode_rows)
        if "check" in args.parts:
            summary["check_us_per_call"] = check_cost(work)
            print("the check itself, µs per call (in process): "
                  + ", ".join(f"{mode} {us:.1f}" for mode, us in summary["check_us_per_call"].items()))
        print("\nstore write path, ours / baseline (median of rounds):")
        for engine, s in summary["store"].items():
            print(f"  {engine:<10} points/s {s['median_ratio']:.3f}  (min {s['min']:.3f}, max {s['max']:.3f}); "
                  f"client CPU per point {s['median_cpu_ratio']:.3f}")
        print("server, 4 writers, by authentication mode:")
        for mode, s in summary["server"].items():
            ratio = s["median_ratio_vs_baseline_one_token"]
            print(f"  {mode:<22} {s['median_points_per_s']:>10,.0f} points/s  p50 {s['median_p50_ms']:6.1f} ms"
                  f"  vs baseline one-token {ratio or float('nan'):.3f}  GetRun p50 {s['median_small_call_p50_us']:.0f} µs")
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        if args.parts != ["store", "server", "check"]:
            return  # a partial run leaves the full results alone
        with open(os.path.join(HERE, "results", "access.json"), "w") as handle:
            json.dump({"baseline": args.baseline, "load_average_at_start": load, "rounds": args.rounds, "summary": summary,
                       "store_rows": store_rows, "server_rows": mode_rows}, handle, indent=2)
    finally:
        if cluster is not None:
            cluster.stop()
            cluster.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
