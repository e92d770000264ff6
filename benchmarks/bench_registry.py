"""The registry's costs on the embedded store, each beside a baseline measured in the same run.

    python benchmarks/bench_registry.py [--versions 1000] [--points 200000] [--files 200] [--gc-files 10000] [--rounds 5]

1. Resolving a model reference (``NAME@ALIAS``, ``NAME@latest``, ``NAME@VERSION``,
   ``models:/NAME/VERSION``) against looking the model up by its id (the baseline), on a name
   with ``--versions`` versions, in alternating rounds; ratio = reference / id.
2. Deleting a run with ``--points`` metric points and ``--files`` artifacts of 4 KB (rows in one
   transaction, then the files) against removing the same number of files with ``os.remove``
   (the file system's share); ratio = delete_run / removing the files.
3. ``gc`` (a dry run) over ``--gc-files`` stored files against listing the same folder with
   ``os.walk`` (the baseline); ratio = gc / walk.

Prints a table; writes ``benchmarks/results/registry.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def _timed(fn, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def bench_references(folder: str, versions: int, rounds: int) -> list[dict]:
    from modelbox_autolog._records import Batch, ModelRecord, RunStart, new_id
    from modelbox_autolog.backends.sqlite import SQLiteStore
    from modelbox_autolog.client import Client

    uri = f"sqlite:///{folder}/refs/modelbox.db"
    store = SQLiteStore(uri)
    run_id = new_id()
    records: list = [RunStart(run_id, "bench", "models", time.time())]
    for name in ("churn-clf", *(f"other-{i}" for i in range(99))):
        count = versions if name == "churn-clf" else 10
        records += [ModelRecord(new_id(), run_id, name, "sklearn", [], time.time()) for _ in range(count)]
    store.write(Batch(new_id(), "bench", records))
    store.close()
    client = Client(uri)
    client.set_alias("churn-clf", "production", versions // 2)
    model_id = client.model(f"churn-clf@{versions // 2}").id
    refs = {"NAME@ALIAS": "churn-clf@production", "NAME@latest": "churn-clf@latest",
            "NAME@VERSION": f"churn-clf@{versions // 2}", "models:/NAME/VERSION": f"models:/churn-clf/{versions // 2}"}
    repeat = 300
    rows = []
    for label, ref in refs.items():
        ours, base = [], []
        for _ in range(rounds):  # alternating: the machine's noise hits both sides alike
            base.append(_timed(lambda: client.model(model_id), repeat))
            ours.append(_timed(lambda ref=ref: client.model(ref), repeat))
        ratios = [o / b for o, b in zip(ours, base, strict=True)]
        rows.append({"what": f"client.model({label})", "ours_us": statistics.median(ours) * 1e6,
                     "baseline": "client.model(id)", "baseline_us": statistics.median(base) * 1e6,
                     "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)})
    return rows


def bench_delete(folder: str, points: int, files: int, rounds: int) -> dict:
    import modelbox_autolog as mbx

    ours, base = [], []
    for number in range(rounds):
        uri = f"sqlite:///{folder}/delete{number}/modelbox.db"
        mbx.autolog(backend=uri, frameworks=[], experiment="bench", capture_console=False, capture_env=False,
                    system_metrics_interval=None)
        source = os.path.join(folder, f"artifact{number}.bin")
        with open(source, "wb") as handle:
            handle.write(os.urandom(4096))
        with mbx.start_run(name="big") as run:
            for step in range(points):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
            for index in range(files):
                run.log_artifact(source, name=f"a/{index}.bin")
        mbx.flush(120)
        mbx.shutdown()
        loose = os.path.join(folder, f"loose{number}")  # the baseline: the same number of files, removed by hand
        os.makedirs(loose)
        for index in range(files):
            shutil.copyfile(source, os.path.join(loose, f"{index}.bin"))
        start = time.perf_counter()
        for name in os.listdir(loose):
            os.remove(os.path.join(loose, name))
        base.append(time.perf_counter() - start)
        client = mbx.Client(uri)
        start = time.perf_counter()
        report = client.delete_run(run.id)
        ours.append(time.perf_counter() - start)
        assert report.files == files, report
        client.close()
    ratios = [o / b for o, b in zip(ours, base, strict=True)]
    return {"what": f"delete_run ({points:,} points, {files} files)", "ours_ms": statistics.median(ours) * 1e3,
            "baseline": f"os.remove x {files}", "baseline_ms": statistics.median(base) * 1e3,
            "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)}


def bench_gc(folder: str, count: int, rounds: int) -> dict:
    from modelbox_autolog._records import Artifact, Batch, RunStart, new_id
    from modelbox_autolog.backends.sqlite import SQLiteStore
    from modelbox_autolog.gc import collect_garbage

    uri = f"sqlite:///{folder}/gc/modelbox.db"
    store = SQLiteStore(uri)
    source = os.path.join(folder, "gc-source.bin")
    with open(source, "wb") as handle:
        handle.write(b"x" * 64)
    run_id = new_id()
    store.write(Batch(new_id(), "bench", [RunStart(run_id, "bench", "gc", time.time()),
                                          *(Artifact(new_id(), run_id, f"f{i}", source) for i in range(count))]))
    for index in range(count // 100):  # 1% unreferenced
        store.artifact_store.put(f"runs/gone/{index}/left.bin", iter([b"y" * 64]))
    ours, base = [], []
    root = store.artifact_store.root
    for _ in range(rounds):
        start = time.perf_counter()
        sum(len(names) for _, _, names in os.walk(root))
        base.append(time.perf_counter() - start)
        start = time.perf_counter()
        report = collect_garbage(store, older_than_s=0)
        ours.append(time.perf_counter() - start)
        assert report.files == count // 100, report
    store.close()
    ratios = [o / b for o, b in zip(ours, base, strict=True)]
    return {"what": f"gc dry run ({count:,} files, 1% unreferenced)", "ours_ms": statistics.median(ours) * 1e3,
            "baseline": "os.walk of the folder", "baseline_ms": statistics.median(base) * 1e3,
            "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--gc-files", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="modelbox-bench-registry-")
    try:
        rows = bench_references(folder, args.versions, args.rounds)
        rows.append(bench_delete(folder, args.points, args.files, args.rounds))
        rows.append(bench_gc(folder, args.gc_files, args.rounds))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{'what':<44} {'ours':>10} {'baseline':<24} {'baseline':>10} {'ratio':>6}  (min-max of {args.rounds} rounds)")
    for row in rows:
        unit = "us" if "ours_us" in row else "ms"
        print(f"{row['what']:<44} {row['ours_' + unit]:>8.1f}{unit} {row['baseline']:<24} {row['baseline_' + unit]:>8.1f}{unit} "
              f"{row['ratio']:>6.2f}  ({row['ratio_min']:.2f}-{row['ratio_max']:.2f})")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "registry.json"), "w", encoding="utf-8") as handle:
        json.dump({"args": vars(args), "load_average": os.getloadavg(), "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
