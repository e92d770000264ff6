"""The Go and C++ SDKs next to the Python SDK, logging into one ``modelbox server`` in the same run.

    python benchmarks/bench_sdks.py [--points 200000] [--rounds 5]

Each round logs ``--points`` metric points from each SDK, in a fresh process, into the same
server (loopback, SQLite store, a token), in a rotating order (Python, Go, C++; then Go, C++,
Python; ...), and measures:
  1. points/s from the first ``log_metric`` until the server has stored every point (the SDK's
     flush / ``End`` returned), checked by reading the run back;
  2. the cost of one ``log_metric`` / ``LogMetric`` call in the calling thread, while the SDK's
     background sender works meanwhile: timed per block of 1,000 calls; the median block is the
     typical call, the mean over the whole loop adds batch hand-overs and preemptions.
Medians over the rounds, with the spread, and ratios to the Python SDK. Builds the SDKs first
(cached under build/sdk). Prints a table; writes ``benchmarks/results/sdks.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from bench_grpc import Server, _free_port  # noqa: E402

BUILD = os.environ.get("MODELBOX_SDK_BUILD") or os.path.join(ROOT, "build", "sdk")
TOKEN = "bench-sdks"

PYTHON_BENCH = r"""
import json, sys, time
import modelbox_autolog as mbx
points = int(sys.argv[2])
mbx.autolog(backend=sys.argv[1], experiment="bench-sdks", capture_console=False, capture_env=False)
run = mbx.start_run(name="python")
log = run.log_metric
clock = time.perf_counter
blocks = []
started = clock()
for start in range(0, points, 1000):
    t0 = clock()
    for i in range(start, min(points, start + 1000)):
        log("loss", float(i), i)
    blocks.append((clock() - t0) * 1e9 / 1000)
logged = clock() - started
blocks.sort()
run.end()
ok = mbx.flush(300)
total = time.perf_counter() - started
print(json.dumps({"sdk": "python", "points": points, "log_seconds": logged, "total_seconds": total, "ok": ok,
                  "ns_per_call": blocks[len(blocks) // 2], "ns_per_call_mean": logged * 1e9 / points,
                  "points_per_s": points / total, "run_id": run.id}))
"""


def build() -> dict[str, list[str]]:
    """Build both SDKs' tools; the command that runs each SDK's benchmark (points appended)."""
    env = {**os.environ, "MODELBOX_SDK_BUILD": BUILD}
    subprocess.run(["bash", "sdk/go/build.sh", "build"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    cpp = os.path.join(BUILD, "cpp")
    if not os.path.exists(os.path.join(cpp, "CMakeCache.txt")):
        subprocess.run(["cmake", "-S", "sdk/cpp", "-B", cpp, "-DCMAKE_BUILD_TYPE=Release"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", cpp, "--parallel", "2"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return {
        "python": [sys.executable, "-c", PYTHON_BENCH],
        "go": [os.path.join(BUILD, "go", "bin", "modelbox-go"), "bench"],
        "cpp": [os.path.join(cpp, "modelbox_cpp"), "bench"],
    }


def run_one(sdk: str, command: list[str], uri: str, points: int) -> dict:
    if sdk == "python":
        args = [*command, uri, str(points)]
    else:
        args = [*command, "--uri", uri, "--points", str(points)]
    env = {**os.environ, "MODELBOX_TOKEN": TOKEN, "PYTHONPATH": ROOT}
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"{sdk} benchmark failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    if not result.get("ok", True):
        raise SystemExit(f"{sdk}: not everything was stored: {result}")
    return result


def stored_points(uri: str, run_id: str) -> int:
    import modelbox_autolog as mbx

    os.environ["MODELBOX_TOKEN"] = TOKEN
    return len(mbx.Client(uri).run(run_id).metrics("loss"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "sdks.json"))
    args = parser.parse_args()

    commands = build()
    order = ["python", "go", "cpp"]
    samples: dict[str, list[dict]] = {sdk: [] for sdk in order}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-sdks-") as folder:
        server = TokenServer(folder)  # the SDKs authenticate as in production
        try:
            for round_index in range(args.rounds):
                rotation = order[round_index % 3:] + order[:round_index % 3]
                for sdk in rotation:
                    result = run_one(sdk, commands[sdk], server.uri, args.points)
                    stored = stored_points(server.uri, result["run_id"])
                    if stored != args.points:
                        raise SystemExit(f"{sdk}: {stored} points stored, {args.points} logged")
                    samples[sdk].append(result)
                    print(f"round {round_index + 1} {sdk:6} {result['points_per_s']:>12,.0f} points/s "
                          f"{result['ns_per_call']:>8.0f} ns/call", file=sys.stderr)
        finally:
            server.stop()
    load_after = os.getloadavg()

    summary = {}
    for sdk, rows in samples.items():
        rates = [r["points_per_s"] for r in rows]
        calls = [r["ns_per_call"] for r in rows]
        means = [r["ns_per_call_mean"] for r in rows]
        summary[sdk] = {
            "points_per_s": statistics.median(rates), "points_per_s_min": min(rates), "points_per_s_max": max(rates),
            "ns_per_call": statistics.median(calls), "ns_per_call_min": min(calls), "ns_per_call_max": max(calls),
            "ns_per_call_mean": statistics.median(means),
        }
    base = summary["python"]
    names = {"python": "Python (mbx.start_run)", "go": "Go (sdk/go)", "cpp": "C++ (sdk/cpp)"}
    print(f"\n{args.points:,} points per SDK per round, {args.rounds} rounds, one server; medians (min-max)")
    print("| SDK | points/s until stored | vs Python | one log call, calling thread: typical | mean | Python / this | target |")
    print("|---|---|---|---|---|---|---|")
    for sdk in order:
        s = summary[sdk]
        target = "< 1 µs" if sdk != "python" else "< 2 µs"
        met = "yes" if s["ns_per_call"] < (1000 if sdk != "python" else 2000) else "NO"
        print(f"| {names[sdk]} | {s['points_per_s']:,.0f} ({s['points_per_s_min']:,.0f}-{s['points_per_s_max']:,.0f}) "
              f"| {s['points_per_s'] / base['points_per_s']:.2f}x "
              f"| {s['ns_per_call'] / 1000:.3f} µs ({s['ns_per_call_min'] / 1000:.3f}-{s['ns_per_call_max'] / 1000:.3f}) "
              f"| {s['ns_per_call_mean'] / 1000:.3f} µs "
              f"| {base['ns_per_call'] / s['ns_per_call']:.1f}x | {target}: {met} |")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (2 cores)")

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump({
            "points": args.points, "rounds": args.rounds, "summary": summary, "samples": samples,
            "load_before": load_before, "load_after": load_after, "machine": platform.platform(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
        }, handle, indent=2)
    print(f"wrote {os.path.relpath(args.out, ROOT)}")
    return 0


class TokenServer(Server):
    """bench_grpc's server process, with --token."""

    def __init__(self, folder: str) -> None:
        self.port = _free_port()
        self.uri = f"grpc://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "modelbox_autolog.server.cli", "--store", f"sqlite:///{folder}/modelbox.db",
               "--port", str(self.port), "--log-level", "warning", "--token", TOKEN]
        self.log = open(os.path.join(folder, "server.log"), "wb")
        env = {**os.environ, "PYTHONPATH": ROOT}
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self._wait()


if __name__ == "__main__":
    raise SystemExit(main())
