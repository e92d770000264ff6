"""The manual logging API (API.md section 2) against a real SQLite store, read back with Client."""

from __future__ import annotations

import math
import os
import threading
import time

import pytest

import modelbox_autolog as mbx
from modelbox_autolog.backends import ImmutableModel, NotFound


@pytest.fixture
def configured(store_uri, client):
    mbx.autolog(backend=store_uri, frameworks=[], experiment="unit")
    return client


def test_params_flattened_and_non_json_values_kept_as_repr(configured):
    class Odd:
        def __repr__(self) -> str:
            return "Odd()"

    with mbx.start_run(name="p") as run:
        run.log_params({"lr": 1e-3, "optimizer": {"name": "adam", "betas": [0.9, 0.99]}, 3: "int key", "odd": Odd()})
        run.log_param("nan", float("nan"))
        run.log_param("huge", "x" * 10_000_000)
    mbx.flush(10)
    params = configured.run(run.id).params
    assert params["lr"] == 0.001
    assert params["optimizer.name"] == "adam" and params["optimizer.betas"] == [0.9, 0.99]
    assert params["3"] == "int key"
    assert params["odd"] == "Odd()"
    assert params["nan"] == "nan"
    assert params["huge"] == "x" * 10_000_000  # stored as given, never shortened


def test_metrics_steps_epochs_nan_inf_and_bad_values(configured):
    import numpy as np

    with mbx.start_run() as run:
        run.log_metric("loss", 0.31, step=120, epoch=2)
        run.log_metrics({"loss": 0.3, "acc": 0.9}, step=121)
        run.log_metric("auto", 1.0)
        run.log_metric("auto", 2.0)  # steps count up per key when not given
        run.log_metric("nan", float("nan"))
        run.log_metric("inf", float("-inf"))
        run.log_metric("np", np.float32(0.5), step=np.int64(7), epoch=np.int32(1))
        run.log_metric(("tuple", "key"), 1.0)
        run.log_metric("text", "not a number")  # refused, counted, never raises
    mbx.flush(10)
    r = configured.run(run.id)
    assert [(p.step, p.value, p.epoch) for p in r.metrics("loss")] == [(120, 0.31, 2), (121, 0.3, None)]
    assert [(p.step, p.value) for p in r.metrics("auto")] == [(0, 1.0), (1, 2.0)]
    assert math.isnan(r.metrics("nan")[0].value)
    assert r.metrics("inf")[0].value == float("-inf")
    assert [(p.step, p.value, p.epoch) for p in r.metrics("np")] == [(7, 0.5, 1)]
    assert "('tuple', 'key')" in r.metric_keys()
    assert "text" not in r.metric_keys()
    assert mbx.stats()[configured.uri]["rejected"] == 1


def test_events_timed_and_plain(configured):
    with mbx.start_run() as run:
        with run.event("data_loading", epoch=2):
            time.sleep(0.02)
        with pytest.raises(KeyError), run.event("lookup"):
            raise KeyError("x")
        run.log_event("checkpoint_saved", path="ckpt.pt", bytes=12345)
    mbx.flush(10)
    events = configured.run(run.id).events()
    assert [e.name for e in events] == ["data_loading", "lookup", "checkpoint_saved"]
    loading = events[0]
    assert loading.duration_s >= 0.02 and loading.attrs["epoch"] == 2
    assert loading.attrs["end"] == pytest.approx(loading.timestamp + loading.duration_s)
    assert "KeyError" in events[1].attrs["error"]
    assert events[2].attrs == {"path": "ckpt.pt", "bytes": 12345}
    assert [e.name for e in configured.run(run.id).events("checkpoint_saved")] == ["checkpoint_saved"]


def test_artifacts_are_streamed_copies_with_sha256(configured, tmp_path):
    import hashlib

    payload = os.urandom(3 * 1024 * 1024 + 17)
    source = tmp_path / "weights.bin"
    source.write_bytes(payload)
    with mbx.start_run() as run:
        run.log_artifact(source)
        run.log_artifact(source, name="plots/again.bin")
        assert run.log_artifact(tmp_path / "missing.bin") is None
    mbx.flush(10)
    artifacts = configured.run(run.id).artifacts()
    assert [a.name for a in artifacts] == ["weights.bin", "plots/again.bin"]
    for artifact in artifacts:
        assert artifact.bytes == len(payload)
        assert artifact.sha256 == hashlib.sha256(payload).hexdigest()
        with open(artifact.path_or_uri, "rb") as handle:
            assert handle.read() == payload


def test_models_are_entities_with_versions_labels_lineage_and_finalize(configured, tmp_path):
    import pickle

    model_file = tmp_path / "model.pkl"
    model_file.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with mbx.start_run(name="train") as run:
        first = run.log_model(model_file, name="churn-clf", framework="pickle", metadata={"auc": 0.91},
                              labels={"env": "staging"}, datasets=["s3://bucket/train.parquet"])
        second = run.log_model(model_file, name="churn-clf", framework="pickle")
    mbx.flush(10)
    assert first.version == 1 and second.version == 2
    m = configured.model(first.id)
    assert (m.name, m.framework, m.run_id, m.status) == ("churn-clf", "pickle", run.id, "draft")
    assert m.metadata == {"auc": 0.91} and m.labels == {"env": "staging"}
    assert m.datasets == ["s3://bucket/train.parquet"]
    assert m.experiment_id == configured.run(run.id).experiment_id
    assert m.url == first.url and configured.model(m.url).id == m.id
    assert [x.id for x in configured.models(labels={"env": "staging"})] == [first.id]
    assert [x.id for x in configured.run(run.id).models()] == [second.id, first.id]

    updated = configured.update_model(first.id, metadata={"f1": 0.8}, labels={"owner": "ana"})
    assert updated.metadata == {"auc": 0.91, "f1": 0.8} and updated.labels == {"env": "staging", "owner": "ana"}
    assert configured.finalize_model(first.id).status == "final"
    with pytest.raises(ImmutableModel):
        configured.update_model(first.id, labels={"env": "prod"})

    folder = configured.download_model(first.url, tmp_path / "out")
    assert open(os.path.join(folder, "model.pkl"), "rb").read() == model_file.read_bytes()
    assert configured.load_model(first.id) == {"weights": [1, 2, 3]}


def test_unknown_ids_give_precise_errors(configured):
    with pytest.raises(NotFound, match="no run with id 'nope'"):
        configured.run("nope")
    with pytest.raises(NotFound, match="no model with id 'nope'"):
        configured.model("nope")


def test_run_ids_can_be_given_by_unique_prefix(configured):
    with mbx.start_run() as run:
        pass
    mbx.flush(10)
    assert configured.run(run.id[:8]).id == run.id


def test_status_failed_and_killed_and_nesting(configured):
    with pytest.raises(ZeroDivisionError), mbx.start_run(name="bad"):
        1 / 0  # noqa: B018
    with pytest.raises(KeyboardInterrupt), mbx.start_run(name="stopped"):
        raise KeyboardInterrupt
    with mbx.start_run(name="parent") as parent:
        assert mbx.active_run() is parent
        with mbx.start_run(name="child") as child:
            assert mbx.active_run() is child
        assert mbx.active_run() is parent
    assert mbx.active_run() is None
    mbx.flush(10)
    runs = {r.name: r for r in configured.runs()}
    assert runs["bad"].status == "failed" and runs["stopped"].status == "killed"
    assert runs["child"].parent_run_id == parent.id
    assert [r.id for r in configured.run(parent.id).children()] == [child.id]


def test_progress_tags_env_and_console(configured, capsys):
    mbx.autolog(backend=configured.uri, frameworks=[], experiment="unit", capture_console=True)
    with mbx.start_run(tags={"team": "vision"}) as run:
        run.set_progress(0.5)
        run.set_tags({"stage": "dev"})
        print("hello from training")
    mbx.flush(10)
    r = configured.run(run.id)
    assert r.progress == 0.5
    assert r.tags == {"team": "vision", "stage": "dev"}
    assert r.env["python"].count(".") == 2 and "pytest" in r.env["packages"]
    assert r.env["argv"] and r.env["platform"]
    (console,) = [a for a in r.artifacts() if a.kind == "console"]
    assert "hello from training" in open(console.path_or_uri).read()
    assert "hello from training" in capsys.readouterr().out  # still printed to the real stream


def test_git_commit_and_dirty_flag_captured(tmp_path, monkeypatch):
    import subprocess

    from modelbox_autolog._context import git_info

    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q"], ["config", "user.email", "a@b"], ["config", "user.name", "a"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    (repo / "f.txt").write_text("1")
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "c"], cwd=repo, check=True)
    info = git_info(str(repo))
    assert len(info["commit"]) == 40 and info["dirty"] is False
    (repo / "f.txt").write_text("2")
    assert git_info(str(repo))["dirty"] is True


def test_active_run_is_context_local(configured):
    seen = {}
    with mbx.start_run(name="main"):
        thread = threading.Thread(target=lambda: seen.setdefault("other", mbx.active_run()))
        thread.start()
        thread.join()
    assert seen["other"] is None


def test_flush_returns_true_when_stored(configured):
    with mbx.start_run() as run:
        for i in range(10_000):
            run.log_metric("x", i)
        assert mbx.flush(timeout=10) is True
        assert len(configured.run(run.id).metrics("x")) == 10_000


def test_memory_backend_capture():
    from modelbox_autolog import testing

    with testing.capture() as cap:
        with mbx.start_run(name="captured") as run:
            run.log_metric("m", 1.0)
        assert cap.only_run().name == "captured"
        assert [p.value for p in cap.run(run.id).metrics("m")] == [1.0]


def test_sigterm_marks_runs_killed_and_keeps_what_was_logged(store_uri, client, tmp_path):
    import signal
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import time, modelbox_autolog as mbx
        mbx.autolog(backend={store_uri!r}, frameworks=[], capture_console=False)
        run = mbx.start_run(name="terminated")
        for i in range(100):
            run.log_metric("m", i)
        print("ready", flush=True)
        time.sleep(60)
    """)
    env = {**os.environ, "MODELBOX_JOURNAL_DIR": str(tmp_path / "j")}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == -signal.SIGTERM  # still dies of SIGTERM, as without us
    (run,) = client.runs()
    assert run.status == "killed"
    assert len(run.metrics("m")) == 100


def test_client_reads_its_own_writes_without_an_explicit_flush(configured):
    for attempt in range(20):
        with mbx.start_run(name=f"r{attempt}") as run:
            for i in range(3000):
                run.log_metric("m", i)
        assert len(configured.run(run.id).metrics("m")) == 3000


def test_logging_after_shutdown_is_not_lost(configured):
    with mbx.start_run(name="before") as run:
        run.log_metric("m", 1.0)
    mbx.shutdown()
    run.log_metric("m", 2.0)  # an ended run still accepts records; the exporter restarts
    with mbx.start_run(name="after") as later:
        later.log_metric("n", 3.0)
    assert mbx.flush(10)
    assert [p.value for p in configured.run(run.id).metrics("m")] == [1.0, 2.0]
    assert [p.value for p in configured.run(later.id).metrics("n")] == [3.0]
