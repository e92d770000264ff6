"""``modelbox sync SRC --to DST`` copies a whole store between any two URIs (SQLite to
PostgreSQL + S3 and back), idempotently: a second run copies nothing, a third only what is new."""

from __future__ import annotations

import hashlib
import math
import os

import modelbox_autolog as mbx
from modelbox_autolog.backends import open_store
from modelbox_autolog.cli import main as cli_main


def _snapshot(uri: str) -> dict:
    """Everything a user can read back, minus what differs by location (paths, urls, experiment ids)."""
    store = open_store(uri)
    try:
        runs = {}
        for r in store.runs():
            runs[r.id] = {
                "experiment": r.experiment, "name": r.name, "status": r.status, "start": r.start_time, "end": r.end_time,
                "progress": r.progress, "parent": r.parent_run_id, "params": r.params, "tags": r.tags, "env": r.env,
                "metrics": {k: [(p.step, "nan" if math.isnan(p.value) else p.value, p.timestamp, p.epoch)
                                for p in store.metrics(r.id, k)] for k in store.metric_keys(r.id)},
                "events": [(e.name, e.timestamp, e.duration_s, e.attrs) for e in store.events(r.id)],
                "inputs": [tuple(i) for i in store.inputs(r.id)],
                "artifacts": sorted((a.id, a.name, a.bytes, a.sha256, a.kind,
                                     hashlib.sha256(b"".join(store.read_file(a.path_or_uri))).hexdigest() if a.bytes is not None else None)
                                    for a in store.artifacts(r.id)),
            }
        models = sorted((m.id, m.name, m.version, m.framework, m.run_id, m.status, str(m.metadata), str(m.labels), tuple(m.datasets),
                         tuple((f.name, f.bytes, f.sha256) for f in m.files)) for m in store.models())
        return {"experiments": sorted(e.name for e in store.experiments()), "runs": runs, "models": models}
    finally:
        store.close()


def _log_history(uri: str, tmp_path, experiment: str, points: int) -> str:
    mbx.autolog(backend=uri, experiment=experiment, capture_console=False)
    (tmp_path / "model").mkdir(exist_ok=True)
    (tmp_path / "model" / "weights.bin").write_bytes(os.urandom(5000))
    (tmp_path / "plot.png").write_bytes(os.urandom(3000))
    with mbx.start_run(name="parent", tags={"team": "a"}) as parent:
        parent.log_params({"lr": 0.1, "layers": [64, 32]})
        for step in range(points):
            parent.log_metrics({"loss": 1 / (step + 1), "weird": float("nan") if step == 3 else float(step)}, step=step,
                               epoch=step // 100)
        with parent.event("eval", split="val"):
            pass
        parent.log_input("s3://data/train.parquet", kind="dataset", rows=5)
        parent.log_artifact(str(tmp_path / "plot.png"), name="plots/plot.png")
        with mbx.start_run(name="child") as child:
            child.log_metric("acc", 0.5, step=1)
        model = parent.log_model(str(tmp_path / "model"), name="churn", framework="generic", metadata={"auc": 0.9},
                                 labels={"env": "dev"}, datasets=["s3://data/train.parquet"])
    assert mbx.flush(60)
    mbx.Client(uri).finalize_model(model.id)
    return parent.id


def _sync(source: str, target: str, capsys) -> str:
    assert cli_main(["sync", source, "--to", target]) == 0
    return capsys.readouterr().out


def test_sqlite_to_postgres_and_s3_and_back_idempotently(tmp_path, pg_uri, bucket, capsys):
    local = f"sqlite:///{tmp_path}/alone/modelbox.db"
    team = f"{pg_uri}?artifacts=s3://{bucket}/team"
    run_id = _log_history(local, tmp_path, "alone", 2500)
    original = _snapshot(local)
    assert len(original["runs"]) == 2 and len(original["runs"][run_id]["metrics"]["loss"]) == 2500

    out = _sync(local, team, capsys)
    assert "synced 2 runs" in out and "5,001 new metric points" in out.replace("\n", " ")
    assert _snapshot(team) == original

    out = _sync(local, team, capsys)  # again: nothing new
    assert "0 new metric points" in out and "0 files" in out
    assert _snapshot(team) == original

    # more history on the source side: only that is copied
    mbx.shutdown()
    mbx.autolog(backend=local, experiment="later", capture_console=False)
    with mbx.start_run(name="later") as later:
        later.log_metric("x", 1.0, step=0)
    assert mbx.flush(30)
    out = _sync(local, team, capsys)
    assert "1 new metric points" in out
    grown = _snapshot(local)
    assert _snapshot(team) == grown and later.id in grown["runs"]

    back = f"sqlite:///{tmp_path}/back/modelbox.db"
    _sync(team, back, capsys)
    assert _snapshot(back) == grown


def test_sync_into_a_team_server_through_its_replicas(tmp_path, replicas, pg_uri, capsys):
    local = f"sqlite:///{tmp_path}/alone/modelbox.db"
    _log_history(local, tmp_path, "alone", 300)
    original = _snapshot(local)
    a, b = replicas(2)
    _sync(local, f"grpc://127.0.0.1:{a.port},127.0.0.1:{b.port}", capsys)
    assert _snapshot(pg_uri) == original
    assert "0 new metric points" in _sync(local, a.uri, capsys)
