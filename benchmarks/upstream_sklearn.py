"""scikit-learn's own test suite (it ships inside the installed package) with and without autolog.

    python benchmarks/upstream_sklearn.py [--modules sklearn.tests.test_pipeline ...]

For each test module of the subset, pytest runs twice in fresh processes, in alternating order:
once plainly and once with ``mbx.autolog()`` called before the first test (a pytest plugin,
``benchmarks/upstream/modelbox_upstream_plugin.py``, into a temporary SQLite store, with
``MODELBOX_AUTOLOG_TESTING=1`` so any error of ours fails the test instead of being swallowed).
The table compares every test's outcome (passed, failed, error, skipped, xfailed, xpassed),
lists the tests whose outcome differs, and reports what autolog stored (runs, child runs,
models) and the wall-time ratio of the two pytest processes. Results go to
``benchmarks/results/upstream_sklearn.json``.

Lightning's tests are not part of its wheel (nor are XGBoost's, LightGBM's, CatBoost's or
Keras'): ``--check-shipped`` says which frameworks ship a test suite in this environment.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results", "upstream_sklearn.json")
SUBSET = [
    "sklearn.tests.test_pipeline",
    "sklearn.tests.test_base",
    "sklearn.tests.test_calibration",
    "sklearn.tests.test_multiclass",
    "sklearn.model_selection.tests.test_validation",
    "sklearn.preprocessing.tests.test_label",
    "sklearn.preprocessing.tests.test_function_transformer",
    "sklearn.metrics.tests.test_classification",
    "sklearn.compose.tests.test_column_transformer",
    "sklearn.feature_selection.tests.test_rfe",
]
SHIPPED_SUITES = {  # framework -> (import name, where its wheel would carry its tests if it shipped them)
    "scikit-learn": ("sklearn", "tests"), "lightning": ("lightning", "pytorch/tests"),
    "pytorch_lightning": ("pytorch_lightning", "tests"), "xgboost": ("xgboost", "tests"),
    "lightgbm": ("lightgbm", "tests"), "catboost": ("catboost", "tests"), "keras": ("keras", "src/tests"),
}


def run_pytest(module: str, mode: str, workdir: str) -> dict[str, Any]:
    outcomes = os.path.join(workdir, f"{mode}.json")
    store = os.path.join(workdir, "store")
    env = {**os.environ, "UPSTREAM_MODE": mode, "UPSTREAM_OUTCOMES": outcomes,
           "UPSTREAM_BACKEND": f"sqlite:///{store}/modelbox.db", "MODELBOX_JOURNAL_DIR": os.path.join(workdir, "journal"),
           "PYTHONPATH": os.pathsep.join([os.path.join(HERE, "upstream"), ROOT,
                                          *filter(None, [os.environ.get("PYTHONPATH")])])}
    env["MODELBOX_AUTOLOG_TESTING"] = "1" if mode == "autolog" else "0"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "--pyargs", module, "-q", "-p", "no:cacheprovider",
                           "-p", "modelbox_upstream_plugin"], capture_output=True, text=True, env=env, cwd=workdir,
                          timeout=3600)
    elapsed = time.perf_counter() - started
    if not os.path.exists(outcomes):
        raise RuntimeError(f"{module} ({mode}) did not run:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    with open(outcomes) as handle:
        result = json.load(handle)
    result["seconds"] = elapsed
    if mode == "autolog":
        result["stored"] = stored(f"sqlite:///{store}/modelbox.db")
    return result


def stored(uri: str) -> dict[str, Any]:
    import modelbox_autolog as mbx

    client = mbx.Client(uri)
    runs = client.runs()
    models = client.models()
    return {
        "runs": len(runs), "top_level_runs": sum(1 for r in runs if r.parent_run_id is None),
        "child_runs": sum(1 for r in runs if r.parent_run_id is not None), "models": len(models),
        "model_bytes": sum((f.bytes or 0) for m in models for f in m.files),
        "failed_runs": sum(1 for r in runs if r.status == "failed"),
        "top_names": Counter(r.name for r in runs if r.parent_run_id is None).most_common(8),
    }


def compare(module: str, index: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="upstream-") as workdir:
        order = ("plain", "autolog") if index % 2 == 0 else ("autolog", "plain")
        results = {mode: run_pytest(module, mode, workdir) for mode in order}
    plain, ours = results["plain"], results["autolog"]
    differing = sorted(n for n in set(plain["outcomes"]) | set(ours["outcomes"])
                       if plain["outcomes"].get(n) != ours["outcomes"].get(n))
    return {
        "module": module, "tests": len(plain["outcomes"]),
        "plain": dict(Counter(plain["outcomes"].values())), "autolog": dict(Counter(ours["outcomes"].values())),
        "differing": [{"test": n, "plain": plain["outcomes"].get(n), "autolog": ours["outcomes"].get(n),
                       "failure": ours["failures"].get(n, "")[-1500:]} for n in differing],
        "seconds_plain": plain["seconds"], "seconds_autolog": ours["seconds"],
        "ratio": ours["seconds"] / plain["seconds"], "stored": ours["stored"],
    }


def shipped_suites() -> dict[str, bool]:
    """Which installed frameworks carry a test suite (looked up on disk: nothing is imported)."""
    found = {}
    for framework, (package, tests) in SHIPPED_SUITES.items():
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        folders = list(spec.submodule_search_locations or []) if spec is not None else []
        found[framework] = any(os.path.isdir(os.path.join(folder, tests)) for folder in folders)
    return found


def table(rows: list[dict[str, Any]]) -> str:
    def counts(c: dict[str, int]) -> str:
        return "/".join(str(c.get(k, 0)) for k in ("passed", "failed", "error", "skipped", "xfailed", "xpassed"))

    lines = ["| module | tests | plain p/f/e/s/xf/xp | autolog p/f/e/s/xf/xp | differing | runs (child) | models | plain s | autolog s | ratio |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["stored"]
        lines.append(f"| {r['module'].replace('sklearn.', '')} | {r['tests']} | {counts(r['plain'])} | {counts(r['autolog'])} | "
                     f"{len(r['differing'])} | {s['runs']} ({s['child_runs']}) | {s['models']} | {r['seconds_plain']:.1f} | "
                     f"{r['seconds_autolog']:.1f} | {r['ratio']:.2f}x |")
    total_plain = sum(r["seconds_plain"] for r in rows)
    total_ours = sum(r["seconds_autolog"] for r in rows)
    lines.append(f"| **total** | {sum(r['tests'] for r in rows)} | | | {sum(len(r['differing']) for r in rows)} | "
                 f"{sum(r['stored']['runs'] for r in rows)} ({sum(r['stored']['child_runs'] for r in rows)}) | "
                 f"{sum(r['stored']['models'] for r in rows)} | {total_plain:.1f} | {total_ours:.1f} | {total_ours / total_plain:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", nargs="+", default=SUBSET)
    parser.add_argument("--output", default=RESULTS)
    parser.add_argument("--check-shipped", action="store_true", help="only say which frameworks ship their tests")
    args = parser.parse_args()
    shipped = shipped_suites()
    if args.check_shipped:
        print(json.dumps(shipped, indent=1))
        return
    load_before = os.getloadavg()[0]
    started = time.time()
    rows = []
    for index, module in enumerate(args.modules):
        row = compare(module, index)
        rows.append(row)
        print(f"{module}: {len(row['differing'])} differing, {row['stored']['runs']} runs, ratio {row['ratio']:.2f}x",
              file=sys.stderr)
    result = {"benchmark": "upstream_sklearn", "date": time.strftime("%Y-%m-%d"), "duration_s": round(time.time() - started),
              "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
              "shipped_test_suites": shipped, "modules": rows}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(result, handle, indent=1)
    print(table(rows))
    for row in rows:
        for diff in row["differing"]:
            print(f"\n{diff['test']}: plain {diff['plain']}, autolog {diff['autolog']}\n{diff['failure'][-800:]}")
    print(f"\nshipped test suites: {', '.join(k for k, v in shipped.items() if v) or 'none'}; "
          f"not shipped: {', '.join(k for k, v in shipped.items() if not v)}")
    print(f"load average {load_before:.2f} -> {result['load_average_after']:.2f}; {result['duration_s']} s; "
          f"written to {os.path.relpath(args.output, ROOT)}")


if __name__ == "__main__":
    main()
