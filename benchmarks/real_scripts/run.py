"""Real example scripts from public sources, run as their users run them, without and with ``autolog()``.

    python benchmarks/real_scripts/run.py                 # every script in MANIFEST
    python benchmarks/real_scripts/run.py sklearn_digits xgboost_sklearn   # some of them
    python benchmarks/real_scripts/run.py --list
    python benchmarks/real_scripts/run.py --pairs 3 sklearn_digits   # paired timing, alternating order

Each script runs twice in a fresh interpreter and a fresh working folder: once plain, once under a
runner that calls ``mbx.autolog()`` and then ``runpy.run_path`` (as ``python script.py`` would:
the script's folder first on ``sys.path``, ``sys.argv`` set, ``__name__ == "__main__"``). The
plain run goes through the same runner without the ``autolog()`` line, so both see the same
interpreter start. Compared: exit code, stdout (timings masked), the set of Python warnings on
stderr, the final numbers each script prints (a regex per script), what we printed on stderr
(lines starting ``modelbox-autolog``), and what was recorded (runs and their statuses, models,
artifacts, metric keys; after the plot worker has stored the diagnostic plots the script left,
``plots_after_exit_s`` after its exit, which is not counted in its time). Any difference is a
defect of ours. ``--pairs N`` runs each script N times each way, alternating which goes first,
and reports the median of the paired time ratios. Writes
``benchmarks/results/real_scripts.json`` and prints a table. Scripts and their sources/licences:
the header of each file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "scripts")
ROOT = os.path.dirname(os.path.dirname(HERE))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "real_scripts.json")

# name: (script path under scripts/, argv, regex of the final numbers to compare, timeout s)
MANIFEST: dict[str, tuple[str, list[str], str, float]] = {
    "pytorch_mnist": ("pytorch_mnist.py", ["--epochs", "2", "--save-model"], r"Average loss: ([\d.]+), Accuracy: (\d+)", 600),
    "pytorch_word_language_model": ("word_language_model/main.py", ["--epochs", "2", "--emsize", "16", "--nhid", "16",
                                    "--log-interval", "5", "--data", "{data}/corpus"], r"test ppl\s+([\d.]+)", 600),
    "pytorch_regression": ("pytorch_regression.py", [], r"Loss: ([\d.]+) after", 300),
    "pytorch_vae": ("pytorch_vae.py", ["--epochs", "2", "--log-interval", "5"], r"Test set loss: ([\d.]+)", 600),
    "pytorch_time_sequence": ("time_sequence_prediction.py", ["--steps", "1"], r"test loss: ([\d.e-]+)", 600),
    "pytorch_tensorboard_tutorial": ("tensorboard_tutorial.py", [], r"Finished Training|running_loss ([\d.]+)", 600),
    "keras_mnist_convnet": ("keras_mnist_convnet.py", [], r"Test accuracy: ([\d.]+)", 600),
    "keras_tensorboard_quickstart": ("keras_tensorboard_quickstart.py", [], r"final test accuracy: ([\d.]+)", 600),
    "lightning_autoencoder": ("lightning_autoencoder.py", [], r"test_loss\s+([\d.]+)", 600),
    "transformers_trainer": ("transformers_trainer.py", [], r"eval_loss': ([\d.]+)", 600),
    "sklearn_digits": ("sklearn_digits_classification.py", [], r"accuracy\s+([\d.]+)", 300),
    "sklearn_classifier_comparison": ("sklearn_classifier_comparison.py", [], r"score ([\d.]+)", 300),
    "sklearn_grid_search_digits": ("sklearn_grid_search_digits.py", [], r"\n([\d.]+) \(\+/-", 600),
    "sklearn_permutation_tests": ("sklearn_permutation_tests.py", [], r"p-value: ([\d.]+)", 900),
    "sklearn_cv_predict": ("sklearn_cv_predict.py", [], r"R2: ([\d.-]+)", 300),
    "xgboost_sklearn_examples": ("xgboost_sklearn_examples.py", [], r"^(-?[\d.]+(?:e[-+]?\d+)?|True|False)$", 600),
    "xgboost_cross_validation": ("xgboost_cross_validation.py", [], r"test-error-mean\s+([\d.]+)", 300),
    "lightgbm_simple_example": ("lightgbm_simple_example.py", [], r"RMSE of prediction is: ([\d.]+)", 300),
    "lightgbm_sklearn_example": ("lightgbm_sklearn_example.py", [], r"is: ([\d.]+)", 300),
    "catboost_quickstart": ("catboost_quickstart.py", [], r"(-?\d+\.\d+(?:e-?\d+)?)", 300),
}

RUNNER = r"""
import os, runpy, sys
mode, script, *argv = sys.argv[1:]
try:  # TensorFlow 2.21 crashes when triton is imported after it (both modes alike)
    import triton  # noqa: F401
except ImportError:
    pass
if mode == "autolog":
    import modelbox_autolog as mbx
    mbx.autolog()
sys.argv = [script, *argv]
sys.path[0] = os.path.dirname(os.path.abspath(script))
runpy.run_path(script, run_name="__main__")
"""

TIMINGS = [
    (re.compile(r"\d+(\.\d+)?\s*(ms|s|us|µs|sec|seconds|secs)\b(/step)?"), "<T>"),
    (re.compile(r"(time|elapsed|ms/batch|it/s|s/it|samples_per_second|steps_per_second|runtime)['\"]?[:= ]+\s*[\d.e+-]+", re.I), r"\1 <T>"),
    (re.compile(r"\d+(\.\d+)?(it/s|s/it)"), "<T>"),
    (re.compile(r"\d\d:\d\d(:\d\d)?"), "<T>"),
    (re.compile(r"0x[0-9a-f]+"), "<ADDR>"),
]
WARNING_LINE = re.compile(r"^(?:\S+:\d+: )?(\w*Warning): (.*)$")


def normalize(text: str) -> list[str]:
    lines = []
    for line in text.replace("\r", "\n").splitlines():
        for pattern, repl in TIMINGS:
            line = pattern.sub(repl, line)
        line = line.rstrip()
        if line:
            lines.append(line)
    return lines


def warnings_of(stderr: str) -> set[str]:
    found = set()
    for line in stderr.splitlines():
        m = WARNING_LINE.match(line.strip())
        if m:
            found.add(f"{m.group(1)}: {re.sub(r'[0-9]+', 'N', m.group(2))[:160]}")
    return found


def finals(stdout: str, pattern: str) -> list[str]:
    return [g for m in re.finditer(pattern, stdout, re.M) for g in (m.groups() or (m.group(0),)) if g]


def make_data(folder: str) -> None:
    """Inputs a script reads from disk, made up here (never downloaded): a small text corpus."""
    import random

    rng = random.Random(0)
    words = [f"w{i}" for i in range(200)]
    os.makedirs(os.path.join(folder, "corpus"), exist_ok=True)
    for split, n in (("train", 600), ("valid", 80), ("test", 80)):
        with open(os.path.join(folder, "corpus", f"{split}.txt"), "w") as handle:
            for _ in range(n):
                handle.write(" " + " ".join(rng.choice(words) for _ in range(rng.randint(5, 15))) + " \n")


def run_once(name: str, mode: str, python: str) -> dict:
    script, argv, _pattern, timeout = MANIFEST[name]
    work = tempfile.mkdtemp(prefix=f"real-{name}-{mode}-")
    data = os.path.join(work, "data")
    make_data(data)
    argv = [a.replace("{data}", data) for a in argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELBOX_")}
    env.update(
        PYTHONPATH=ROOT, MPLBACKEND="Agg", PYTHONHASHSEED="0", CUDA_VISIBLE_DEVICES="",
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TQDM_DISABLE="0",
        MODELBOX_BACKEND=f"sqlite:///{work}/store/modelbox.db", MODELBOX_JOURNAL_DIR=os.path.join(work, "journal"),
    )
    started = time.perf_counter()
    try:
        proc = subprocess.run([python, "-c", RUNNER, mode, os.path.join(SCRIPTS, script), *argv], cwd=work, env=env,
                              capture_output=True, text=True, timeout=timeout)
        code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, stdout, stderr = "timeout", (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or ""), ""
    seconds = time.perf_counter() - started
    result = {"mode": mode, "exit": code, "seconds": round(seconds, 2), "stdout": stdout, "stderr": stderr, "work": work}
    if mode == "autolog":
        result["plots_after_exit_s"] = plots_delivered(os.path.join(work, "journal"))
        result["recorded"] = recorded(f"sqlite:///{work}/store/modelbox.db")
    return result


def plots_delivered(journal: str, timeout: float = 300.0) -> float | None:
    """Seconds after the script's exit until the detached plot worker stored the diagnostic plots
    it was left (None: none were left). Not part of the script's time; the next run waits for it."""
    import glob

    pattern = os.path.join(journal, "*", "plots", "*.job")
    started = time.perf_counter()
    if not glob.glob(pattern):
        return None
    while glob.glob(pattern) and time.perf_counter() - started < timeout:
        time.sleep(0.05)
    return round(time.perf_counter() - started, 2)


def recorded(uri: str) -> dict:
    import modelbox_autolog as mbx

    path = uri[len("sqlite:///"):]
    if not os.path.exists(path):
        return {"runs": 0}
    client = mbx.Client(uri)
    runs = client.runs(limit=100_000)
    statuses: dict[str, int] = {}
    artifacts = metric_keys = 0
    for run in runs:
        statuses[run.status] = statuses.get(run.status, 0) + 1
        artifacts += len(run.artifacts())
        metric_keys += len(run.metric_keys())
    return {"runs": len(runs), "statuses": statuses, "models": len(client.models()), "artifacts": artifacts,
            "metric_keys": metric_keys, "frameworks": sorted({r.tags.get("framework", "") for r in runs} - {""})}


def compare(name: str, plain: dict, auto: dict, timings: list[tuple[float, float]] | None = None) -> dict:
    pattern = MANIFEST[name][2]
    a, b = normalize(plain["stdout"]), normalize(auto["stdout"])
    differing = [(x, y) for x, y in zip(a, b, strict=False) if x != y]
    if len(a) != len(b):
        differing.append((f"<{len(a)} lines>", f"<{len(b)} lines>"))
    ours = [line for line in auto["stderr"].splitlines() if "modelbox" in line.lower()]
    w_plain, w_auto = warnings_of(plain["stderr"]), warnings_of(auto["stderr"])
    f_plain, f_auto = finals(plain["stdout"], pattern), finals(auto["stdout"], pattern)
    return {
        "script": MANIFEST[name][0],
        "exit": [plain["exit"], auto["exit"]],
        "exit_same": plain["exit"] == auto["exit"],
        "stdout_same": not differing,
        "stdout_differences": differing[:8],
        "warnings_added": sorted(w_auto - w_plain),
        "warnings_gone": sorted(w_plain - w_auto),
        "finals": [f_plain[-6:], f_auto[-6:]],
        "finals_same": f_plain == f_auto,
        "ours_on_stderr": ours[:10],
        "recorded": auto.get("recorded", {}),
        "seconds": [plain["seconds"], auto["seconds"]],
        "time_ratio": round(auto["seconds"] / plain["seconds"], 2) if plain["seconds"] else None,
        **_paired(timings),
        "plots_after_exit_s": auto.get("plots_after_exit_s"),
        "stderr_tail": [plain["stderr"][-600:], auto["stderr"][-600:]] if plain["exit"] != 0 or auto["exit"] != 0 else None,
    }


def _paired(timings: list[tuple[float, float]] | None) -> dict:
    """With ``--pairs N``: each pair's seconds, the median of the paired ratios and the ratio of medians."""
    if not timings or len(timings) < 2:
        return {}
    import statistics

    ratios = [a / p for p, a in timings if p]
    return {"pairs": [[round(p, 2), round(a, 2)] for p, a in timings], "paired_ratio": round(statistics.median(ratios), 3),
            "ratio_of_medians": round(statistics.median(a for _, a in timings) / statistics.median(p for p, _ in timings), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the working folders")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--pairs", type=int, default=1, help="run each script N times each way, alternating the order "
                        "pair by pair, and report the paired time ratio (the first pair's outputs are compared)")
    args = parser.parse_args()
    if args.list:
        print("\n".join(MANIFEST))
        return
    names = args.names or list(MANIFEST)
    results = {}
    if os.path.exists(RESULTS) and args.names:
        with open(RESULTS) as handle:
            results = json.load(handle).get("scripts", {})
    for name in names:
        plain = run_once(name, "plain", args.python)
        auto = run_once(name, "autolog", args.python)
        timings = [(plain["seconds"], auto["seconds"])]
        for index in range(1, args.pairs):
            order = ("autolog", "plain") if index % 2 else ("plain", "autolog")
            again = {mode: run_once(name, mode, args.python) for mode in order}
            timings.append((again["plain"]["seconds"], again["autolog"]["seconds"]))
            for r in again.values():
                shutil.rmtree(r["work"], ignore_errors=True)
        results[name] = compare(name, plain, auto, timings)
        if not args.keep:
            for r in (plain, auto):
                shutil.rmtree(r["work"], ignore_errors=True)
        row = results[name]
        print(f"{name:32s} exit {row['exit']} stdout {'same' if row['stdout_same'] else 'DIFF'} "
              f"finals {'same' if row['finals_same'] else 'DIFF'} warnings +{len(row['warnings_added'])}/-{len(row['warnings_gone'])} "
              f"ours {len(row['ours_on_stderr'])} runs {row['recorded'].get('runs')} models {row['recorded'].get('models')} "
              f"ratio {row.get('paired_ratio', row['time_ratio'])}", flush=True)
        row["load_average"] = [round(x, 1) for x in os.getloadavg()]
        save(results)  # after each script: a long run that is stopped keeps what it measured
    print_table(results)


def save(results: dict) -> None:
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    ordered = {name: results[name] for name in MANIFEST if name in results}
    with open(RESULTS, "w") as handle:
        json.dump({"python": sys.version.split()[0], "scripts": ordered}, handle, indent=2)


def print_table(results: dict) -> None:
    print("\n| script | exit plain/autolog | stdout | final numbers | warnings added | our stderr lines | runs (status) | models | artifacts | time ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, row in results.items():
        rec = row["recorded"]
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(rec.get("statuses", {}).items()))
        print(f"| {name} | {row['exit'][0]}/{row['exit'][1]} | {'same' if row['stdout_same'] else 'differs'} | "
              f"{'same' if row['finals_same'] else 'differ'} | {len(row['warnings_added'])} | {len(row['ours_on_stderr'])} | "
              f"{rec.get('runs', 0)} ({statuses}) | {rec.get('models', 0)} | {rec.get('artifacts', 0)} | "
              f"{row.get('paired_ratio', row['time_ratio'])} |")


if __name__ == "__main__":
    main()
