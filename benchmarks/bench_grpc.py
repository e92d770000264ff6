"""The gRPC transport's speed and memory targets, against a real server process on loopback.

    python benchmarks/bench_grpc.py [--points 1000000] [--upload-mb 1024]

1. Sustained metric points/s from one client into the server's SQLite store:
   a. transport: ``GrpcBackend.write`` of 20,000-point batches, back to back (plus the
      latency of each write RPC under that load: p50/p99);
   b. end to end: ``run.log_metric`` in a loop through the exporter until ``flush`` returns;
   c. baseline in the same run: one RPC per metric point (the ratio is 1a / 1c).
2. Upload of one large file (1 GB by default) as an artifact: MB/s from the first byte to the
   batch being stored, and the server's peak RSS growth meanwhile (sampled every 20 ms).
Prints a table; writes ``benchmarks/results/grpc.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

BATCH_POINTS = 20_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(proc: subprocess.Popen, port: int, log_name: str, timeout: float = 60.0) -> None:
    """Until the server on ``port`` answers its health check; exits the benchmark if it died or never did."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"a server exited with {proc.returncode}; see {log_name}")
            try:
                stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                return
            except grpc.RpcError:
                time.sleep(0.1)
    raise SystemExit(f"a server did not start; see {log_name}")


class Server:
    def __init__(self, folder: str) -> None:
        self.port = _free_port()
        self.uri = f"grpc://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "modelbox_autolog.server.cli", "--store", f"sqlite:///{folder}/modelbox.db",
               "--port", str(self.port), "--log-level", "warning"]
        self.log = open(os.path.join(folder, "server.log"), "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        wait_until_serving(self.proc, self.port, self.log.name)


    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bench_transport(uri: str, points: int) -> dict:
    from modelbox_autolog._records import Batch, RunStart, new_id
    from modelbox_autolog.backends.grpc import GrpcBackend

    backend = GrpcBackend(uri)
    run_id = new_id()
    backend.write(Batch(new_id(), "bench", [RunStart(run_id, "bench-grpc", "transport", time.time())]))
    now = time.time()
    batches = [
        Batch(new_id(), "bench", [(run_id, f"m{i % 4}", i * 0.001, b * BATCH_POINTS + i, now, None) for i in range(BATCH_POINTS)])
        for b in range(max(1, points // BATCH_POINTS))
    ]
    backend.write(batches[0])  # warm the connection and the server's series cache
    latencies = []
    started = time.perf_counter()
    for batch in batches[1:]:
        t0 = time.perf_counter()
        backend.write(batch)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    stored = sum(len(backend.store().metrics(run_id, f"m{k}")) for k in range(4))
    backend.close()
    sent = BATCH_POINTS * (len(batches) - 1)
    assert stored == BATCH_POINTS * len(batches), (stored, BATCH_POINTS * len(batches))
    return {
        "points": sent, "seconds": elapsed, "points_per_s": sent / elapsed,
        "write_rpc_p50_ms": statistics.median(latencies) * 1e3, "write_rpc_p99_ms": _percentile(latencies, 0.99) * 1e3,
        "batch_points": BATCH_POINTS,
    }


def bench_end_to_end(uri: str, points: int) -> dict:
    import modelbox_autolog as mbx

    mbx.autolog(backend=uri, experiment="bench-grpc", capture_console=False, capture_env=False)
    started = time.perf_counter()
    with mbx.start_run(name="end-to-end") as run:
        log = run.log_metric
        for i in range(points):
            log("loss", i * 0.001, i)
    logged = time.perf_counter() - started
    assert mbx.flush(300)
    elapsed = time.perf_counter() - started
    stored = len(mbx.Client(uri).run(run.id).metrics("loss"))
    mbx.shutdown()
    assert stored == points, (stored, points)
    return {"points": points, "seconds": elapsed, "points_per_s": points / elapsed, "logging_seconds": logged}


def bench_unbatched(uri: str, seconds: float = 3.0) -> dict:
    from modelbox_autolog._records import Batch, RunStart, new_id
    from modelbox_autolog.backends.grpc import GrpcBackend

    backend = GrpcBackend(uri)
    run_id = new_id()
    backend.write(Batch(new_id(), "bench", [RunStart(run_id, "bench-grpc", "unbatched", time.time())]))
    latencies = []
    started = time.perf_counter()
    step = 0
    while time.perf_counter() - started < seconds and step < 200_000:
        t0 = time.perf_counter()
        backend.write(Batch(new_id(), "bench", [(run_id, "loss", 0.5, step, time.time(), None)]))
        latencies.append(time.perf_counter() - t0)
        step += 1
    elapsed = time.perf_counter() - started
    backend.close()
    return {"points": step, "seconds": elapsed, "points_per_s": step / elapsed,
            "rpc_p50_ms": statistics.median(latencies) * 1e3, "rpc_p99_ms": _percentile(latencies, 0.99) * 1e3}


def bench_upload(server: Server, folder: str, megabytes: int) -> dict:
    from modelbox_autolog._records import Artifact, Batch, RunStart, new_id
    from modelbox_autolog.backends.grpc import GrpcBackend

    path = os.path.join(folder, "upload.bin")
    block = os.urandom(1 << 20)
    with open(path, "wb") as handle:
        for _ in range(megabytes):
            handle.write(block)
    backend = GrpcBackend(server.uri)
    run_id = new_id()
    backend.write(Batch(new_id(), "bench", [RunStart(run_id, "bench-grpc", "upload", time.time())]))
    baseline = server.rss_mb()
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], server.rss_mb())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        backend.write(Batch(new_id(), "bench", [Artifact(new_id(), run_id, "upload.bin", path)]))
    finally:
        elapsed = time.perf_counter() - started
        done.set()
        sampler.join()
    [stored] = backend.store().artifacts(run_id)
    backend.close()
    os.unlink(path)
    assert stored.bytes == megabytes << 20
    return {"megabytes": megabytes, "seconds": elapsed, "mb_per_s": megabytes / elapsed,
            "server_rss_before_mb": baseline, "server_rss_growth_mb": peak[0] - baseline}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--upload-mb", type=int, default=1024)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "grpc.json"))
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="modelbox-bench-grpc-")
    os.environ["MODELBOX_JOURNAL_DIR"] = os.path.join(folder, "journal")
    server = Server(folder)
    try:
        transport = bench_transport(server.uri, args.points)
        end_to_end = bench_end_to_end(server.uri, args.points)
        unbatched = bench_unbatched(server.uri)
        upload = bench_upload(server, folder, args.upload_mb)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    results = {
        "transport": transport, "end_to_end": end_to_end, "unbatched": unbatched, "upload": upload,
        "batched_vs_unbatched": transport["points_per_s"] / unbatched["points_per_s"],
        "targets": {"points_per_s": 200_000, "upload_mb_per_s": 200, "upload_rss_growth_mb": 64},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    rows = [
        ("metric points/s, batched write RPCs (target >= 200,000)", f"{transport['points_per_s']:,.0f}"),
        ("metric points/s, log_metric -> exporter -> server", f"{end_to_end['points_per_s']:,.0f}"),
        ("metric points/s, one RPC per point (baseline)", f"{unbatched['points_per_s']:,.0f}"),
        ("batched / unbatched", f"{results['batched_vs_unbatched']:,.0f}x"),
        (f"write RPC latency under load, p50 / p99 ({BATCH_POINTS:,} points)",
         f"{transport['write_rpc_p50_ms']:.1f} / {transport['write_rpc_p99_ms']:.1f} ms"),
        ("single-point RPC latency, p50 / p99", f"{unbatched['rpc_p50_ms']:.2f} / {unbatched['rpc_p99_ms']:.2f} ms"),
        (f"upload {upload['megabytes']} MB (target >= 200 MB/s)", f"{upload['mb_per_s']:,.0f} MB/s"),
        ("server RSS growth during the upload (target < 64 MB)", f"{upload['server_rss_growth_mb']:.1f} MB"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>16}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
