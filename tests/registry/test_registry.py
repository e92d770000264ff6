"""The model registry and the run lifecycle through the Client, on SQLite, PostgreSQL and a real
gRPC server: references and aliases, external models, labels and tags, archive, delete, gc."""

from __future__ import annotations

import functools
import http.server
import os
import threading

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import modelbox_autolog as mbx
from modelbox_autolog.backends import BackendError, ImmutableModel, NotFound, Refused


def fitted(seed: int) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(60, 3))
    return LogisticRegression().fit(x, (x[:, 0] + 0.1 * seed > 0).astype(int))


def log_versions(folder, count: int = 3, name: str = "churn-clf") -> tuple[str, list[str]]:
    """A run that logs ``count`` versions of a real scikit-learn model; (run id, model ids)."""
    ids = []
    with mbx.start_run(name="train") as run:
        run.log_metric("loss", 0.5)
        for seed in range(count):
            path = os.path.join(folder, f"model-{seed}.pkl")
            joblib.dump(fitted(seed), path)
            ids.append(run.log_model(path, name=name, framework="sklearn", labels={"stage": "dev"}).id)
    assert mbx.flush(30)
    return run.id, ids


def changes_of(client, object_type: str, since: int = 0) -> list:
    return [c for c in client.changes(since, 10_000) if c.object_type == object_type]


def test_references_and_aliases(logged, tmp_path):
    run_id, ids = log_versions(str(tmp_path))
    client = logged.client()
    assert [client.model(f"churn-clf@{v}").id for v in (1, 2, 3)] == ids
    assert client.model("churn-clf@latest").id == ids[2]
    assert client.model("models:/churn-clf/1").id == ids[0]
    assert client.model("models:/churn-clf/latest").version == 3

    seq = client.last_change_seq()
    set_to_2 = client.set_alias("churn-clf", "production", 2)
    assert set_to_2.id == ids[1] and set_to_2.aliases == ["production"]
    assert client.model("churn-clf@production").version == 2
    assert client.model("models:/churn-clf@production").id == ids[1]
    assert client.model(ids[1]).url and client.model(client.model(ids[1]).url).aliases == ["production"]
    # moving the alias is one change: the old version loses it as the new one gets it
    client.set_alias("churn-clf", "production", "latest")
    assert client.model("churn-clf@production").id == ids[2]
    assert client.model(ids[1]).aliases == [] and client.model(ids[2]).aliases == ["production"]
    client.set_alias("churn-clf", "staging", 1)
    events = changes_of(client, "alias", seq)
    assert [(c.kind, c.object_id, c.payload["version"], c.payload["previous_version"]) for c in events] == [
        ("created", "churn-clf@production", 2, None), ("updated", "churn-clf@production", 3, 2),
        ("created", "churn-clf@staging", 1, None)]

    # what an inference service does: load "the production model", a live estimator
    estimator = client.load_model("churn-clf@production")
    x = np.random.default_rng(9).normal(size=(5, 3))
    assert (estimator.predict(x) == fitted(2).predict(x)).all()

    with pytest.raises(NotFound, match=r"no alias 'canary'; its aliases: production \(v3\), staging \(v1\)"):
        client.model("churn-clf@canary")
    with pytest.raises(NotFound, match=r"no version 7; its versions: 1-3"):
        client.model("churn-clf@7")
    with pytest.raises(NotFound, match=r"no model named 'churn-clt'.*did you mean 'churn-clf'"):
        client.model("churn-clt@1")
    with pytest.raises(NotFound, match="is a model name, not an id"):
        client.model("churn-clf")
    with pytest.raises(Refused, match="not valid"):
        client.set_alias("churn-clf", "7", 1)  # would read as a version
    with pytest.raises(NotFound, match="no version 9"):
        client.set_alias("churn-clf", "production", 9)

    client.delete_alias("churn-clf", "staging")
    assert client.model(ids[0]).aliases == []
    with pytest.raises(NotFound, match="no alias 'staging'; its aliases: production"):
        client.delete_alias("churn-clf", "staging")
    assert changes_of(client, "alias")[-1].kind == "deleted"


def test_register_external_models(logged, tmp_path):
    client = logged.client()
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text('{"layers": 2}')
    (folder / "weights").mkdir()
    (folder / "weights" / "model.bin").write_bytes(os.urandom(300_000))
    local = client.register_model(str(folder), name="bert-small", framework="transformers", metadata={"acc": 0.9},
                                  labels={"team": "nlp"}, datasets=["s3://data/train"])
    assert local.run_id is None and local.version == 1 and local.source_uri is None
    assert sorted(f.name for f in local.files) == ["config.json", "weights/model.bin"]
    assert local.metadata == {"acc": 0.9} and local.labels == {"team": "nlp"} and local.datasets == ["s3://data/train"]
    out = client.download_model("bert-small@1", tmp_path / "out")
    with open(os.path.join(out, "weights", "model.bin"), "rb") as handle:
        assert handle.read() == (folder / "weights" / "model.bin").read_bytes()

    ref = client.register_model("hf://org/bert-base", name="bert-base")
    assert ref.source_uri == "hf://org/bert-base" and ref.files == []
    assert client.download_model("bert-base@latest", tmp_path / "out") == "hf://org/bert-base"
    with pytest.raises(NotFound, match="reference to hf://org/bert-base"):
        client.load_model("bert-base@1")

    # an https:// reference is fetched when downloaded (a real HTTP server on 127.0.0.1)
    served = tmp_path / "served"
    served.mkdir()
    joblib.dump(fitted(4), served / "clf.pkl")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/clf.pkl"
        # log_model with a URL records the reference (it used to log nothing)
        with mbx.start_run(name="uses-url") as run:
            logged_model = run.log_model(url, name="web-clf", framework="sklearn")
        assert mbx.flush(30)
        info = client.model("web-clf@1")
        assert info.id == logged_model.id and info.source_uri == url and info.run_id == run.id
        path = client.download_model("web-clf@1", tmp_path / "web")
        assert os.path.isfile(os.path.join(path, "clf.pkl"))
        assert client.load_model("web-clf@1").predict(np.zeros((1, 3))).shape == (1,)
    finally:
        httpd.shutdown()
    created = [c for c in changes_of(client, "model") if c.kind == "created" and c.object_id == ref.id]
    assert created and created[0].payload["source_uri"] == "hf://org/bert-base"
    with pytest.raises(FileNotFoundError):
        client.register_model(str(tmp_path / "nothing-here"), name="x")


def test_labels_tags_name_and_note(logged, tmp_path):
    run_id, ids = log_versions(str(tmp_path), count=1)
    client = logged.client()
    updated = client.update_model("churn-clf@1", labels={"stage": None, "owner": "ana", "ok": True})
    assert updated.labels == {"owner": "ana", "ok": "true"}  # removed, not the string "None"
    assert [m.id for m in client.models(labels={"owner": None})] == ids
    assert client.models(labels={"stage": None}) == []
    client.finalize_model(ids[0])
    with pytest.raises(ImmutableModel):
        client.update_model(ids[0], labels={"owner": None})

    assert client.run(run_id).status == "finished"
    seq = client.last_change_seq()
    view = client.set_tags(run_id, {"team": "vision", "debug": False})
    assert view.tags == {"team": "vision", "debug": "false"}
    assert client.set_tags(run_id, {"debug": None}).tags == {"team": "vision"}
    assert client.rename_run(run_id[:8], "baseline-v2").name == "baseline-v2"
    assert client.set_note(run_id, "tried lr 0.1; overfits after epoch 3").note == "tried lr 0.1; overfits after epoch 3"
    again = client.run(run_id)
    assert (again.name, again.tags, again.note) == ("baseline-v2", {"team": "vision"}, "tried lr 0.1; overfits after epoch 3")
    assert client.set_note(run_id, "").note is None
    payloads = [c.payload for c in changes_of(client, "run", seq)]
    assert {"tags": {"debug": None}} in payloads and {"name": "baseline-v2"} in payloads


def test_archive_and_restore(logged, tmp_path):
    with mbx.start_run(name="keep"):
        pass
    with mbx.start_run(name="old") as old, mbx.start_run(name="old-child"):
        pass
    with mbx.start_run(name="elsewhere", experiment="scratch"):
        pass
    assert mbx.flush(30)
    client = logged.client()
    archived = client.archive_run(old.id)
    assert archived.archived and archived.archived_at is not None
    assert sorted(r.name for r in client.runs(experiment="registry")) == ["keep"]  # the child is archived with it
    assert sorted(r.name for r in client.runs(experiment="registry", archived=True)) == ["old", "old-child"]
    assert client.count_runs(archived=None) == 4 and client.count_runs() == 2
    assert client.runs(where="name = 'old'") == []
    assert client.run(old.id).archived  # still readable by id
    client.restore_run(old.id)
    assert client.count_runs() == 4

    client.archive_experiment("scratch")
    assert [e.name for e in client.experiments()] == ["registry"]
    assert [e.name for e in client.experiments(archived=True)] == ["scratch"]
    assert sorted(r.name for r in client.runs()) == ["keep", "old", "old-child"]
    assert [r.name for r in client.runs(experiment="scratch")] == ["elsewhere"]  # asked for by name: shown
    with mbx.start_run(name="new", experiment="scratch"):  # a new run brings its experiment back
        pass
    assert mbx.flush(30)
    assert sorted(e.name for e in client.experiments()) == ["registry", "scratch"]
    client.archive_experiment("scratch")
    client.restore_experiment("scratch")
    kinds = [(c.kind, c.payload.get("archived")) for c in changes_of(client, "experiment")]
    assert kinds[-2:] == [("updated", True), ("updated", False)]
    with pytest.raises(NotFound, match="did you mean 'scratch'"):
        client.archive_experiment("scrath")


def _files_under(folder: str) -> set[str]:
    return {os.path.relpath(os.path.join(d, n), folder) for d, _, names in os.walk(folder) for n in names}


def test_delete_runs_experiments_and_models(logged, tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    with mbx.start_run(name="parent", experiment="sweep") as parent:
        parent.log_artifact(str(data))
        with mbx.start_run(name="child") as child:
            child.log_metric("loss", 1.0)
            child.log_artifact(str(data))
    run_id, ids = log_versions(str(tmp_path), count=2)
    client = logged.client()
    before = _files_under(logged.artifacts)
    assert any(parent.id in f for f in before) and any(child.id in f for f in before)

    seq = client.last_change_seq()
    report = client.delete_run(parent.id)
    assert (report.runs, report.models, report.files) == (2, 0, 2) and report.bytes == 2 * len("a,b\n1,2\n")
    with pytest.raises(NotFound):
        client.run(child.id)
    assert not any(parent.id in f or child.id in f for f in _files_under(logged.artifacts))
    deleted = [(c.kind, c.object_id) for c in changes_of(client, "run", seq)]
    assert set(deleted) == {("deleted", parent.id), ("deleted", child.id)}

    client.set_alias("churn-clf", "production", 1)
    client.finalize_model(ids[1])
    with pytest.raises(Refused) as refused:
        client.delete_run(run_id)
    assert "churn-clf v1 is churn-clf@production" in str(refused.value) and "churn-clf v2" in str(refused.value)
    assert client.run(run_id).name == "train"  # nothing was deleted
    with pytest.raises(Refused, match="is final"):
        client.delete_model(ids[1])
    with pytest.raises(Refused, match="churn-clf@production"):
        client.delete_experiment("registry")
    client.delete_alias("churn-clf", "production")
    assert client.delete_model("churn-clf@1").models == 1
    with pytest.raises(NotFound):
        client.model(ids[0])
    assert not any(ids[0] in f for f in _files_under(logged.artifacts))

    report = client.delete_experiment("sweep")
    assert report.experiments == 1 and "sweep" not in [e.name for e in client.experiments(archived=None)]
    with pytest.raises(NotFound, match="no experiment"):
        client.delete_experiment("sweep")

    # gc: a file no record points at (left by an interrupted delete) goes; young ones stay
    orphan = os.path.join(logged.artifacts, "runs", "gone", "a1", "left.bin")
    os.makedirs(os.path.dirname(orphan))
    with open(orphan, "wb") as handle:
        handle.write(b"x" * 1000)
    os.utime(orphan, (1_000_000, 1_000_000))
    store_client = mbx.Client(logged.store_uri)
    dry = store_client.gc()
    assert (dry.files, dry.bytes, dry.deleted) == (1, 1000, False) and os.path.exists(orphan)
    assert store_client.gc(delete=True).files == 1 and not os.path.exists(orphan)
    assert store_client.gc(delete=True, older_than_s=0).files == 0  # everything left is referenced
    assert client.run(run_id).artifacts() == [] and client.model(ids[1]).files[0].bytes
    if logged.kind == "grpc":
        with pytest.raises(BackendError, match="modelbox gc --backend"):
            client.gc()


def test_a_spool_can_be_read_but_not_changed(tmp_path):
    uri = f"file://{tmp_path}/spool"
    mbx.autolog(backend=uri, frameworks=[], experiment="offline", capture_console=False, capture_env=False)
    with mbx.start_run(name="offline-run") as run:
        run.log_metric("loss", 1.0)
    assert mbx.flush(30)
    client = mbx.Client(uri)
    assert client.run(run.id).name == "offline-run"
    with pytest.raises(BackendError, match="is a spool: it can be read, not changed.*modelbox sync"):
        client.set_tags(run.id, {"team": "a"})
    with pytest.raises(BackendError, match="is a spool"):
        client.delete_run(run.id)


def test_sync_carries_notes_archive_aliases_and_references(tmp_path):
    from modelbox_autolog.cli import main as modelbox

    source, target = f"sqlite:///{tmp_path}/a/modelbox.db", f"sqlite:///{tmp_path}/b/modelbox.db"
    mbx.autolog(backend=source, frameworks=[], experiment="moved", capture_console=False, capture_env=False)
    run_id, ids = log_versions(str(tmp_path), count=2)
    mbx.shutdown()
    client = mbx.Client(source)
    client.set_note(run_id, "the baseline")
    client.archive_run(run_id)
    client.set_alias("churn-clf", "production", 2)
    client.register_model("hf://org/bert", name="bert")
    assert modelbox(["sync", source, "--to", target]) == 0
    copied = mbx.Client(target)
    run = copied.run(run_id)
    assert run.note == "the baseline" and run.archived and copied.runs() == []
    assert copied.model("churn-clf@production").id == ids[1]
    assert copied.model("bert@latest").source_uri == "hf://org/bert"
    seq = copied.last_change_seq()
    assert modelbox(["sync", source, "--to", target]) == 0  # again: nothing changes
    assert copied.last_change_seq() == seq
