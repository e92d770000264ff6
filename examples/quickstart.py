"""The demo behind `make demo`: one `autolog()` line, every installed framework trained on tiny
synthetic data, then what was recorded, read back from the embedded SQLite store.

Each `examples/*_example.py` names the modules it needs (`REQUIRES`) and has a `main()` with
plain training code; this script runs those whose frameworks are installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MODELBOX_EXPERIMENT", "quickstart")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import modelbox_autolog as mbx  # noqa: E402

# Keras last, and triton preloaded: importing triton (via torch._dynamo) after tensorflow
# segfaults in this stack (TensorFlow 2.21 + triton 3.x), with or without autologging.
ORDER = ["manual", "sklearn", "xgboost", "lightgbm", "catboost", "pytorch", "lightning", "fastai", "keras"]


def examples() -> list[str]:
    found = sorted(f[: -len("_example.py")] for f in os.listdir(HERE) if f.endswith("_example.py"))
    return sorted(found, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))


def installed(modules: tuple[str, ...]) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def main() -> int:
    if importlib.util.find_spec("triton") is not None and importlib.util.find_spec("tensorflow") is not None:
        importlib.import_module("triton")
    mbx.autolog()  # the one line
    ran, skipped, failed = [], [], []
    for name in examples():
        module = importlib.import_module(f"{name}_example")
        if not installed(getattr(module, "REQUIRES", ())):
            skipped.append(name)
            continue
        print(f"--- {name}", flush=True)
        started = time.perf_counter()
        try:
            module.main()
            ran.append(f"{name} ({time.perf_counter() - started:.1f}s)")
        except Exception:
            traceback.print_exc()
            failed.append(name)
    stored = mbx.flush(timeout=60)
    print(f"\nran: {', '.join(ran)}" + (f"; not installed: {', '.join(skipped)}" if skipped else ""))
    print(f"everything stored: {stored}; store: {mbx.Client().uri}\n")

    from modelbox_autolog.cli import main as modelbox

    modelbox(["runs", "--experiment", "quickstart"])
    modelbox(["models"])
    runs = mbx.Client().runs(experiment="quickstart")
    if runs:
        with_metrics = [r for r in runs if r.metric_keys()]
        shown = with_metrics[0] if with_metrics else runs[0]
        print()
        modelbox(["show", shown.id])
        if with_metrics:
            page = os.path.join("modelbox-runs", "quickstart.html")
            modelbox(["plot", shown.id, "-o", page])
    print("\nExplore further: .venv/bin/modelbox runs | show RUN_ID | models | events RUN_ID | plot RUN_ID -o out.png")
    print("\nOpen the web UI on this store (then http://127.0.0.1:5000/):\n")
    print(f"    .venv/bin/modelbox --backend {mbx.Client().uri} ui\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
