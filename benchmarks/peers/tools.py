"""The logging tools compared, behind one small interface, plus readers that count what each stored.

Each tool is used the way its documentation shows, with its defaults:

* ``none``: no logging at all (the baseline);
* ``modelbox``: ``mbx.autolog()`` before the framework is imported (manual: ``run.log_metric``);
* ``mlflow``: ``mlflow.autolog()`` (Keras: ``mlflow.keras.autolog()``, see ``Mlflow.setup``) with a local SQLite tracking store (manual: ``mlflow.log_metric``,
  ``mlflow-sync`` or ``mlflow-async`` = ``synchronous=False``);
* ``wandb``: offline mode, ``wandb.init()`` before training plus the framework's W&B integration
  (Keras ``WandbMetricsLogger``, XGBoost ``WandbCallback``, Lightning ``WandbLogger``); W&B has no
  scikit-learn autologging, so that workload has no W&B variant.

A worker process calls ``import_`` (timed), ``prepare_store`` (not timed: stores exist before a user
trains), ``setup`` (timed: the ``autolog()`` call), then per training ``begin`` (timed: what must
run right before training, e.g. ``wandb.init``), the training, and ``end`` (timed: until everything
is durably stored: for W&B, until its service wrote the run's exit record), and finally ``logged`` (not timed) to count what the store holds.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any


def _flat_count(value: Any) -> int:
    """Leaves of a JSON-like value, so nested configs count like flattened params."""
    if isinstance(value, dict):
        return sum(_flat_count(v) for v in value.values()) or 1
    return 1


class Tool:
    """No logging: the baseline every ratio is computed against."""

    name = "none"
    version = ""

    def import_(self) -> None:
        pass

    def prepare_store(self, experiment: str) -> None:
        pass

    def setup(self, workload: str = "") -> None:
        pass

    def begin(self, workload: str, experiment: str) -> Any:
        return None

    def end(self) -> None:
        pass

    def logged(self, experiment: str) -> dict[str, int]:
        return {}

    def manual(self, experiment: str, calls: int) -> dict[str, float]:
        raise NotImplementedError(self.name)


class Modelbox(Tool):
    name = "modelbox"

    def __init__(self) -> None:
        self.uri = os.environ["MODELBOX_BACKEND"]
        self.experiment = ""
        self.flushed = True

    def import_(self) -> None:
        import modelbox_autolog

        self.mbx = modelbox_autolog
        self.version = modelbox_autolog.__version__

    def prepare_store(self, experiment: str) -> None:
        self.experiment = experiment

    def setup(self, workload: str = "") -> None:
        self.mbx.autolog(backend=self.uri, experiment=self.experiment)

    def end(self) -> None:
        self.flushed = self.mbx.flush(600)

    def logged(self, experiment: str) -> dict[str, int]:
        client = self.mbx.Client(self.uri)
        counts = dict.fromkeys(("runs", "params", "metric_keys", "metric_points", "artifacts", "models", "events"), 0)
        for run in client.runs(experiment=experiment):
            keys = run.metric_keys()
            counts["runs"] += 1
            counts["params"] += len(run.params)
            counts["metric_keys"] += len(keys)
            counts["metric_points"] += sum(len(run.metrics(key)) for key in keys)
            counts["artifacts"] += len(run.artifacts())
            counts["models"] += len(run.models())
            counts["events"] += len(run.events())
        counts["flushed"] = int(self.flushed)
        return counts

    def manual(self, experiment: str, calls: int) -> dict[str, float]:
        started = time.perf_counter()
        run = self.mbx.start_run(name="manual", experiment=experiment)
        opened = time.perf_counter()
        log_metric = run.log_metric
        for step in range(calls):
            log_metric("loss", 1.0 / (step + 1), step=step)
        logged = time.perf_counter()
        run.end()
        self.flushed = self.mbx.flush(600)
        stored = time.perf_counter()
        return {"begin_s": opened - started, "log_s": logged - opened, "store_s": stored - logged}


class Mlflow(Tool):
    name = "mlflow"

    def __init__(self, synchronous: bool = True) -> None:
        self.synchronous = synchronous
        if not synchronous:
            self.name = "mlflow-async"
        self.experiment_id = ""

    def import_(self) -> None:
        import mlflow

        self.mlflow = mlflow
        self.version = mlflow.__version__

    def prepare_store(self, experiment: str) -> None:
        uri = os.environ["MLFLOW_TRACKING_URI"]
        self.mlflow.set_tracking_uri(uri)
        # Artifacts beside the database, in the benchmark's temporary directory.
        root = os.path.join(os.path.dirname(uri.removeprefix("sqlite:///")), "artifacts", experiment)
        self.experiment_id = self.mlflow.create_experiment(experiment, artifact_location=root)
        self.mlflow.set_experiment(experiment_id=self.experiment_id)

    def setup(self, workload: str = "") -> None:
        if workload == "keras":
            # mlflow.autolog() also enables the TensorFlow flavor, whose Keras patch writes TensorBoard
            # summaries and makes fit() fail without TensorBoard (TF 2.21 no longer depends on it):
            # MLflow's Keras 3 flavor is the documented choice for Keras 3.
            import mlflow.keras

            mlflow.keras.autolog()
        else:
            self.mlflow.autolog()

    def end(self) -> None:
        # Autologging ends its runs inside fit and logs models synchronously; metrics still queued
        # asynchronously are stored here. (Not flush_artifact_async_logging: it opens a new run.)
        self.mlflow.flush_async_logging()
        if self.mlflow.active_run() is not None:
            self.mlflow.end_run()

    def logged(self, experiment: str) -> dict[str, int]:
        client = self.mlflow.MlflowClient()
        counts = dict.fromkeys(("runs", "params", "metric_keys", "metric_points", "artifacts", "models"), 0)
        for run in client.search_runs([self.experiment_id], max_results=1000):
            run_id = run.info.run_id
            counts["runs"] += 1
            counts["params"] += len(run.data.params)
            counts["metric_keys"] += len(run.data.metrics)
            counts["metric_points"] += sum(len(client.get_metric_history(run_id, key)) for key in run.data.metrics)
            counts["artifacts"] += self._artifact_files(client, run_id, None)
        counts["models"] = len(self.mlflow.search_logged_models(experiment_ids=[self.experiment_id], output_format="list"))
        return counts

    def _artifact_files(self, client: Any, run_id: str, path: str | None) -> int:
        total = 0
        for info in client.list_artifacts(run_id, path):
            total += self._artifact_files(client, run_id, info.path) if info.is_dir else 1
        return total

    def manual(self, experiment: str, calls: int) -> dict[str, float]:
        mlflow, synchronous = self.mlflow, self.synchronous
        started = time.perf_counter()
        mlflow.start_run(run_name="manual")
        opened = time.perf_counter()
        for step in range(calls):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step, synchronous=synchronous)
        logged = time.perf_counter()
        if not synchronous:
            mlflow.flush_async_logging()
        mlflow.end_run()
        stored = time.perf_counter()
        return {"begin_s": opened - started, "log_s": logged - opened, "store_s": stored - logged}


class Wandb(Tool):
    name = "wandb"

    def __init__(self) -> None:
        self.record_file = ""
        self.files_dir = ""

    def import_(self) -> None:
        import wandb

        self.wandb = wandb
        self.version = wandb.__version__

    def _init(self, experiment: str) -> None:
        run = self.wandb.init(project=experiment, name=experiment)
        self.files_dir = run.dir
        self.record_file = os.path.join(os.path.dirname(run.dir), f"run-{run.id}.wandb")

    def begin(self, workload: str, experiment: str) -> Any:
        self._init(experiment)
        if workload == "keras":
            from wandb.integration.keras import WandbMetricsLogger

            return [WandbMetricsLogger()]
        if workload == "xgboost":
            from wandb.integration.xgboost import WandbCallback

            return [WandbCallback()]
        if workload == "lightning":
            from lightning.pytorch.loggers import WandbLogger

            return WandbLogger()  # attaches to the run opened above
        raise ValueError(f"W&B has no integration for {workload}")

    def end(self) -> None:
        self.wandb.finish()
        _wait_for_exit_record(self.record_file)

    def logged(self, experiment: str) -> dict[str, int]:
        counts = read_wandb_records(self.record_file)
        counts["artifacts"] += sum(len(files) for _, _, files in os.walk(self.files_dir))
        return counts

    def manual(self, experiment: str, calls: int) -> dict[str, float]:
        wandb = self.wandb
        started = time.perf_counter()
        self._init(experiment)
        opened = time.perf_counter()
        log = wandb.log
        for step in range(calls):
            log({"loss": 1.0 / (step + 1)}, step=step)
        logged = time.perf_counter()
        wandb.finish()
        _wait_for_exit_record(self.record_file)
        stored = time.perf_counter()
        return {"begin_s": opened - started, "log_s": logged - opened, "store_s": stored - logged}


def _records(path: str) -> list[bytes]:
    """Payloads of a W&B transaction log (LevelDB log format after a 7-byte ':W&B' header)."""
    block = 32 * 1024
    with open(path, "rb") as handle:
        data = handle.read()
    if not data.startswith(b":W&B"):
        raise ValueError(f"{path}: not a W&B transaction log")
    out: list[bytes] = []
    pending = b""
    pos = 7
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer padding
            pos += left
            continue
        size = int.from_bytes(data[pos + 4:pos + 6], "little")
        kind = data[pos + 6]
        if pos + 7 + size > len(data):  # a record still being written: read again later
            break
        chunk = data[pos + 7:pos + 7 + size]
        pos += 7 + size
        if kind == 1:  # full
            out.append(chunk)
        elif kind == 2:  # first
            pending = chunk
        elif kind == 3:  # middle
            pending += chunk
        elif kind == 4:  # last
            out.append(pending + chunk)
        else:  # zero-filled tail of a preallocated block
            break
    return out


def _wait_for_exit_record(path: str, timeout: float = 120.0) -> None:
    """Until W&B's service has written the run's closing record: only then is all of it on disk."""
    from wandb.proto import wandb_internal_pb2 as pb

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            payloads = _records(path)
        except (OSError, ValueError):
            payloads = []
        for payload in reversed(payloads):
            record = pb.Record()
            try:
                record.ParseFromString(payload)
            except Exception:  # torn while W&B's service writes it: the next pass reads it whole
                continue
            if record.WhichOneof("record_type") == "exit":
                return
        time.sleep(0.01)
    raise TimeoutError(f"{path}: no exit record after {timeout:.0f} s")


def read_wandb_records(path: str) -> dict[str, int]:
    """What an offline W&B run stored: history rows/values, config leaves, files and artifacts."""
    from wandb.proto import wandb_internal_pb2 as pb

    config: dict[str, int] = {}
    keys: set[str] = set()
    counts = {"runs": 1, "params": 0, "metric_keys": 0, "metric_points": 0, "artifacts": 0, "models": 0, "history_rows": 0}
    for payload in _records(path):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            counts["history_rows"] += 1
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                if not key.startswith("_"):  # _step, _runtime, _timestamp: bookkeeping
                    keys.add(key)
                    counts["metric_points"] += 1
        elif kind == "config":
            for item in record.config.update:
                key = item.key or "/".join(item.nested_key)
                if not key.startswith("_"):
                    config[key] = _flat_count(json.loads(item.value_json or "null"))
        elif kind == "artifact":
            counts["artifacts"] += 1
            counts["models"] += record.artifact.type == "model"
    counts["params"] = sum(config.values())
    counts["metric_keys"] = len(keys)
    return counts


def make(name: str) -> Tool:
    if name == "none":
        return Tool()
    if name == "modelbox":
        return Modelbox()
    if name in ("mlflow", "mlflow-sync"):
        tool = Mlflow(synchronous=True)
        tool.name = name
        return tool
    if name == "mlflow-async":
        return Mlflow(synchronous=False)
    if name == "wandb":
        return Wandb()
    raise ValueError(f"unknown tool {name!r}")
