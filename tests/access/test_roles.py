"""Roles on a team server, over gRPC: readers read, writers change only what they created,
admins change anything; every change names its actor. Real server processes on SQLite and
PostgreSQL stores, tokens made with ``modelbox server token create``."""

from __future__ import annotations

import time

import grpc
import pytest

import modelbox_autolog as mbx
from modelbox_autolog._actor import local_actor
from modelbox_autolog._records import (
    Batch,
    Metric,
    Param,
    RunStart,
    RunUpdate,
    new_id,
)
from modelbox_autolog.backends import BackendError
from modelbox_autolog.proto.modelbox.v1 import service_pb2 as spb
from modelbox_autolog.proto.modelbox.v1 import service_pb2_grpc as sgrpc
from modelbox_autolog.server.policy import RPC_RULES

from .conftest import modelbox, token_env


def _logged_by(team, user: str, tmp_path, experiment: str) -> tuple[str, str]:
    """A run with params, metrics, tags and a draft model, logged by ``user`` through autolog's
    exporter (the path training code takes); (run id, model id)."""
    weights = tmp_path / f"{user}-weights.bin"
    weights.write_bytes(b"\x00\x01" * 512)
    with token_env(team.tokens[user]):
        mbx.autolog(backend=team.uri, experiment=experiment, frameworks=[], capture_console=False, capture_env=False)
        with mbx.start_run(name=f"{user}-baseline", tags={"team": user}) as run:
            run.log_params({"lr": 0.01, "layers": 3})
            for step in range(20):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
            model = run.log_model(str(weights), name=f"{user}-clf", framework="custom", labels={"stage": "dev"})
        assert mbx.flush(30)
        mbx.autolog(disable=True)
        mbx.shutdown()
    return run.id, model.id


def _snapshot(client, run_id: str, model_id: str) -> tuple:
    run = client.run(run_id)
    model = client.model(model_id)
    return (run.name, run.status, run.params, run.tags, len(run.metrics("loss")), model.labels, model.metadata, model.status)


def test_a_writer_cannot_rename_retag_end_or_reparam_another_writers_run(team, tmp_path):
    """The issue's story: a token holder renamed another team's run, set it failed and
    overwrote its params. Now each of those is PERMISSION_DENIED and nothing changes."""
    run_id, model_id = _logged_by(team, "alice", tmp_path, "story")
    reader = team.client("rita")
    before = _snapshot(reader, run_id, model_id)
    seq = reader.last_change_seq()
    bob = team.backend("bob")
    attempts = {
        "rename": [RunUpdate(run_id, name="hijacked")],
        "retag": [RunUpdate(run_id, tags={"team": "bob"})],
        "end as failed": [RunUpdate(run_id, status="failed", end_time=time.time())],
        "overwrite params": [Param(run_id, "lr", "9.0")],
        "log metrics": [Metric(run_id, "loss", 99.0, 1000, time.time())],
        "hide it in a batch that also starts a run of his": [RunStart(new_id(), "story", "bob-run", time.time()),
                                                              RunUpdate(run_id, name="hijacked")],
    }
    for what, records in attempts.items():
        with pytest.raises(BackendError, match="PERMISSION_DENIED") as refused:
            bob.write(Batch(new_id(), "bob", records, time.time()))
        message = str(refused.value)
        assert f"may not change run {run_id}" in message and "created by 'alice'" in message, what
    bob_store = team.client("bob").store
    with pytest.raises(BackendError, match="may not change model"):
        bob_store.update_model(model_id, labels={"stage": "prod"})
    with pytest.raises(BackendError, match="admin role"):
        bob_store.finalize_model(model_id)
    assert _snapshot(reader, run_id, model_id) == before
    assert reader.last_change_seq() == seq  # not one change event: nothing was stored
    assert [r.name for r in reader.runs(experiment="story")] == ["alice-baseline"]

    # Alice changes her own model; only an admin finalizes it or renames her run.
    alice_store = team.client("alice").store
    assert alice_store.update_model(model_id, labels={"owner": "alice"}).labels["owner"] == "alice"
    with pytest.raises(BackendError, match="needs the admin role"):
        alice_store.finalize_model(model_id)
    team.backend("ada").write(Batch(new_id(), "ada", [RunUpdate(run_id, name="renamed-by-admin")], time.time()))
    assert team.client("ada").store.finalize_model(model_id).status == "final"
    assert reader.run(run_id).name == "renamed-by-admin"

    # The change feed is the audit log: every change names its actor.
    changes = reader.changes(seq)
    assert [(c.kind, c.object_type, c.actor) for c in changes] == [
        ("updated", "model", "alice"), ("updated", "run", "ada"), ("updated", "model", "ada")]
    history = [c for c in reader.changes(0) if c.object_id in (run_id, model_id)]
    assert {c.actor for c in history} == {"alice", "ada"}
    assert all(c.actor for c in reader.changes(0))
    tokens = [c for c in reader.changes(0) if c.object_type == "token"]
    assert {c.payload["user"] for c in tokens} >= {"alice", "bob", "rita", "ada"}
    assert {c.actor for c in tokens} == {local_actor()}  # made on the command line, by this OS user


def test_a_reader_reads_everything_and_writes_nothing(team, tmp_path):
    run_id, model_id = _logged_by(team, "bob", tmp_path, "reading")
    rita = team.client("rita")
    before = _snapshot(rita, run_id, model_id)
    seq, runs = rita.last_change_seq(), rita.count_runs()
    backend = team.backend("rita")
    for records in ([RunStart(new_id(), "reading", "rita-run", time.time())], [Param(run_id, "lr", "1")],
                    [RunUpdate(run_id, name="x")]):
        with pytest.raises(BackendError, match="PERMISSION_DENIED.*may only read"):
            backend.write(Batch(new_id(), "rita", records, time.time()))
    with pytest.raises(BackendError, match="may only read"):
        rita.store.update_model(model_id, metadata={"auc": 1.0})
    with pytest.raises(BackendError, match="admin role"):
        rita.store.finalize_model(model_id)
    assert (rita.last_change_seq(), rita.count_runs()) == (seq, runs)
    assert _snapshot(rita, run_id, model_id) == before
    assert rita.run(run_id).metrics("loss")[-1].value == pytest.approx(1 / 20)
    assert rita.model(model_id).name == "bob-clf"

    # Uploads are writes too: the raw RPC, as another SDK would send it.
    channel = grpc.insecure_channel(f"127.0.0.1:{team.port}")
    stub = sgrpc.ModelBoxStub(channel)
    metadata = (("authorization", f"Bearer {team.tokens['rita']}"),)
    with pytest.raises(grpc.RpcError) as refused:
        stub.Upload(iter(()), metadata=metadata, timeout=10)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert stub.ListExperiments(spb.ListExperimentsRequest(), metadata=metadata, timeout=10).experiments
    channel.close()


def test_watchers_see_who_did_what(team, tmp_path):
    seq = team.client("rita").last_change_seq()
    run_id, _ = _logged_by(team, "alice", tmp_path, "watched")
    watcher = team.client("rita")
    streamed = list(watcher.watch(since=seq, timeout=3, poll_interval=0.1))
    mine = [c for c in streamed if c.object_id == run_id]
    assert {(c.kind, c.object_type) for c in mine} >= {("created", "run"), ("appended", "params"), ("appended", "metrics"),
                                                       ("updated", "run")}
    assert {c.actor for c in streamed} == {"alice"}
    code, out, err = modelbox("--backend", team.uri, "watch", "--since", str(seq), "--timeout", "2", token=team.tokens["rita"])
    assert code == 0, err
    rows = [line.split()[:5] for line in out.splitlines() if line.split()[:1] and line.split()[0].isdigit()]
    actors = {row[4] for row in rows if row[3] == run_id[:12]}  # seq, kind, object type, object id, actor
    assert actors == {"alice"}


def test_the_change_feed_follows_a_run(team):
    """Params, tags, progress and metric ranges: one change per batch and run, not per point."""
    ada = team.backend("ada")
    run_id = new_id()
    now = time.time()
    big = '"' + "x" * 3000 + '"'
    ada.write(Batch(new_id(), "ada", [
        RunStart(run_id, "feed", "followed", now),
        Param(run_id, "lr", "0.1"), Param(run_id, "optimizer.name", '"adam"'), Param(run_id, "vocabulary", big),
        *(Metric(run_id, "loss", 1.0 / (s + 1), s, now) for s in range(10, 510)),
        *(Metric(run_id, "acc", 0.5, s, now) for s in (100, 200)),
        RunUpdate(run_id, progress=0.25), RunUpdate(run_id, progress=0.5, tags={"phase": "warmup"}),
    ], now))
    ada.write(Batch(new_id(), "ada", [*(Metric(run_id, "loss", 0.001, s, now) for s in range(510, 520)),
                                      RunUpdate(run_id, status="finished", end_time=now + 1, progress=1.0)], now))
    changes = [c for c in team.client("rita").changes(0, 100_000) if c.object_id == run_id]
    by_kind = {}
    for c in changes:
        by_kind.setdefault((c.kind, c.object_type), []).append(c.payload)
    assert by_kind[("appended", "params")] == [{"params": {"lr": 0.1, "optimizer.name": "adam", "vocabulary": big[:256] + "…"},
                                                "truncated": ["vocabulary"]}]
    assert by_kind[("appended", "metrics")] == [
        {"count": 502, "series": {"loss": {"count": 500, "first_step": 10, "last_step": 509},
                                  "acc": {"count": 2, "first_step": 100, "last_step": 200}}},
        {"count": 10, "series": {"loss": {"count": 10, "first_step": 510, "last_step": 519}}}]
    assert by_kind[("updated", "run")] == [{"progress": 0.5, "tags": {"phase": "warmup"}},
                                           {"status": "finished", "end_time": now + 1, "progress": 1.0}]
    assert {c.actor for c in changes} == {"ada"}


def test_every_rpc_goes_through_one_policy_entry():
    methods = set(spb.DESCRIPTOR.services_by_name["ModelBox"].methods_by_name)
    assert methods - set(RPC_RULES) == set(), "add an entry to server/policy.py RPC_RULES for each new RPC"
