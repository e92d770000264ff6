"""The registry and the run lifecycle on a team server with per-user tokens: every alias, edit,
archive, delete and registration goes through the role policy (gRPC and HTTP alike) and names
its actor in the change feed. Real server processes on SQLite and PostgreSQL stores."""

from __future__ import annotations

import time

import httpx
import pytest

from modelbox_autolog._records import Batch, ModelFile, ModelRecord, RunStart, new_id
from modelbox_autolog.backends import AuthRefused, BackendError, Refused

from .conftest import token_env


def _run_with_model(team, user: str, experiment: str, tmp_path) -> tuple[str, str]:
    """A run of ``user`` holding a draft model ``<user>-reg``, sent with their token; (run id, model id)."""
    weights = tmp_path / f"{user}-{experiment}.bin"
    weights.write_bytes(b"w" * 64)
    run_id, model_id = new_id(), new_id()
    team.backend(user).write(Batch(new_id(), user, [
        RunStart(run_id, experiment, f"{user}-run", time.time()),
        ModelRecord(model_id, run_id, f"{user}-reg", "custom", [ModelFile("w.bin", str(weights))], time.time()),
    ], time.time()))
    return run_id, model_id


def _refused(call, *expected: str) -> None:
    with pytest.raises(AuthRefused, match="PERMISSION_DENIED") as refused:
        call()
    assert all(text in str(refused.value) for text in expected), str(refused.value)


def test_registry_writes_follow_the_roles_and_name_their_actor(team, tmp_path):
    experiment = "registry-roles"
    run_id, model_id = _run_with_model(team, "alice", experiment, tmp_path)
    spare_run, spare_model = _run_with_model(team, "alice", experiment, tmp_path)
    rita, bob, alice, ada = (team.client(user) for user in ("rita", "bob", "alice", "ada"))
    seq = rita.last_change_seq()

    # A reader writes nothing: every registry and lifecycle call is PERMISSION_DENIED.
    reader_calls = {
        "set alias": lambda: rita.set_alias("alice-reg", "production", 1),
        "delete alias": lambda: rita.delete_alias("alice-reg", "production"),
        "rename": lambda: rita.rename_run(run_id, "x"), "tags": lambda: rita.set_tags(run_id, {"a": "b"}),
        "note": lambda: rita.set_note(run_id, "x"), "archive run": lambda: rita.archive_run(run_id),
        "restore run": lambda: rita.restore_run(run_id), "delete run": lambda: rita.delete_run(run_id),
        "remove label": lambda: rita.update_model(model_id, labels={"stage": None}),
        "delete model": lambda: rita.delete_model(model_id),
        "archive experiment": lambda: rita.archive_experiment(experiment),
        "delete experiment": lambda: rita.delete_experiment(experiment),
    }
    for what, call in reader_calls.items():
        with pytest.raises(AuthRefused, match="PERMISSION_DENIED") as refused:
            call()
        assert "'rita' (reader)" in str(refused.value), what
    with token_env(team.tokens["rita"]):  # register_model sends its batch on a connection of its own
        _refused(lambda: rita.register_model("hf://org/reader-model", name="reader-model"), "'rita' (reader) may only read")

    # A writer changes nothing of another writer's, and nothing that needs an admin.
    not_his = ("'bob' (writer)", "created by 'alice'")
    _refused(lambda: bob.rename_run(run_id, "hijacked"), *not_his)
    _refused(lambda: bob.update_run(run_id, tags={"team": "bob"}, note="mine now"), *not_his)
    _refused(lambda: bob.archive_run(run_id), *not_his)
    _refused(lambda: bob.delete_run(run_id), *not_his)
    _refused(lambda: bob.update_model("alice-reg@1", labels={"stage": None}), *not_his)
    _refused(lambda: bob.delete_model("alice-reg@latest"), *not_his)
    for call in (lambda: bob.set_alias("alice-reg", "production", 1), lambda: bob.archive_experiment(experiment),
                 lambda: bob.delete_experiment(experiment)):
        _refused(call, "needs the admin role")
    assert rita.last_change_seq() == seq  # nothing was stored
    assert (rita.run(run_id).name, rita.run(run_id).archived_at, rita.model(model_id).aliases) == ("alice-run", None, [])

    # A writer registers models, edits, archives and deletes its own runs and draft models...
    with token_env(team.tokens["bob"]):
        registered = bob.register_model("hf://org/bert-base", name="bob-bert", framework="transformers")
    assert registered.source_uri == "hf://org/bert-base"
    assert alice.update_run(run_id, name="alice-best", tags={"reviewed": "yes"}, note="baseline").note == "baseline"
    assert alice.update_model(model_id, labels={"stage": "dev"}).labels == {"stage": "dev"}
    assert alice.update_model(model_id, labels={"stage": None}).labels == {}
    assert alice.archive_run(run_id).archived_at is not None
    assert alice.restore_run(run_id).archived_at is None
    assert alice.delete_model(spare_model).models == 1
    # ...but aliases are an admin's, and what an admin aliased is kept from its owner's deletes.
    _refused(lambda: alice.set_alias("alice-reg", "production", 1), "needs the admin role")
    assert ada.set_alias("alice-reg", "production", 1).aliases == ["production"]
    with pytest.raises(Refused, match="alice-reg@production"):
        alice.delete_run(run_id)
    _refused(lambda: alice.delete_alias("alice-reg", "production"), "needs the admin role")
    ada.delete_alias("alice-reg", "production")
    assert alice.delete_run(spare_run).runs == 1

    # An admin does anything: another's model, experiments (archive, restore, delete).
    assert ada.delete_model(registered.id).models == 1
    assert ada.archive_experiment(experiment).archived_at is not None
    assert ada.restore_experiment(experiment).archived_at is None

    # The HTTP API takes the same rules, route by route.
    headers = {user: {"authorization": f"Bearer {team.tokens[user]}"} for user in ("rita", "bob", "alice", "ada")}
    with httpx.Client(base_url=team.http + "/api/v1", timeout=30) as http:
        assert http.put("/models/alice-reg/aliases/staging", json={"version": 1}, headers=headers["alice"]).status_code == 403
        assert http.post(f"/runs/{run_id}/archive", json={}, headers=headers["bob"]).status_code == 403
        assert http.delete(f"/runs/{run_id}", headers=headers["rita"]).status_code == 403
        assert http.post(f"/experiments/{experiment}/archive", json={}, headers=headers["alice"]).status_code == 403
        assert http.delete(f"/experiments/{experiment}", headers=headers["bob"]).status_code == 403
        assert http.patch(f"/runs/{run_id}", json={"note": "via http"}, headers=headers["alice"]).status_code == 200
        assert http.put("/models/alice-reg/aliases/staging", json={"version": 1}, headers=headers["ada"]).status_code == 200
        assert http.delete("/models/alice-reg/aliases/staging", headers=headers["ada"]).status_code == 200
        assert http.delete(f"/experiments/{experiment}", headers=headers["ada"]).status_code == 200

    # gc is no server call: it runs where the store is, with the store's credentials.
    with pytest.raises(BackendError, match="modelbox gc --backend"):
        ada.gc()

    # The change feed is the audit log of all of it.
    feed = [(c.kind, c.object_type, c.actor) for c in rita.changes(seq, 10_000) if c.object_type != "token"]
    assert feed == [
        ("created", "model", "bob"),  # register_model
        ("updated", "run", "alice"), ("updated", "model", "alice"), ("updated", "model", "alice"),
        ("updated", "run", "alice"), ("updated", "run", "alice"),  # archive, restore
        ("deleted", "model", "alice"),
        ("created", "alias", "ada"), ("deleted", "alias", "ada"),
        ("deleted", "run", "alice"),  # the spare run
        ("deleted", "model", "ada"),
        ("updated", "experiment", "ada"), ("updated", "experiment", "ada"),
        ("updated", "run", "alice"),  # the note over HTTP
        ("created", "alias", "ada"), ("deleted", "alias", "ada"),
        ("deleted", "model", "ada"), ("deleted", "run", "ada"), ("deleted", "experiment", "ada"),
    ]
    assert all("actor" not in c.payload for c in rita.changes(seq, 10_000))  # a column of its own, not in the payload
