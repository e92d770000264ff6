"""The HTTP API and the UI's login take the same tokens and the same role rules as gRPC."""

from __future__ import annotations

import time

import httpx

import modelbox_autolog as mbx
from modelbox_autolog._records import Batch, ModelFile, ModelRecord, RunStart, new_id
from modelbox_autolog.server.policy import HTTP_RULES, READ_METHODS
from modelbox_autolog.ui.api import ENDPOINTS

from .conftest import make_token, modelbox


def _model_of(team, user: str, tmp_path) -> str:
    """A draft model in a run of ``user``, sent over gRPC with their token; its id."""
    weights = tmp_path / f"{user}.bin"
    weights.write_bytes(b"w" * 100)
    run_id, model_id = new_id(), new_id()
    team.backend(user).write(Batch(new_id(), user, [
        RunStart(run_id, "http", f"{user}-run", time.time()),
        ModelRecord(model_id, run_id, f"{user}-model", "custom", [ModelFile("w.bin", str(weights))], time.time()),
    ], time.time()))
    return model_id


def _api(team, user: str | None) -> httpx.Client:
    headers = {"authorization": f"Bearer {team.tokens[user]}"} if user else {}
    return httpx.Client(base_url=team.http + "/api/v1", headers=headers, timeout=30)


def test_http_roles_match_grpc(team, tmp_path):
    alice_model = _model_of(team, "alice", tmp_path)
    with _api(team, None) as anonymous:
        refused = anonymous.get("/runs")
        assert refused.status_code == 401 and "Bearer" in refused.json()["message"]
    with _api(team, "rita") as rita:
        assert rita.get("/runs").status_code == 200
        assert rita.get(f"/models/{alice_model}").json()["name"] == "alice-model"
        assert rita.get("/session").json().items() >= {"user": "rita", "role": "reader"}.items()
        seq = rita.get("/changes", params={"since": 0, "limit": 10_000}).json()["last_seq"]
        denied = rita.patch(f"/models/{alice_model}", json={"labels": {"stage": "prod"}})
        assert denied.status_code == 403 and denied.json()["message"].startswith("'rita' (reader) may only read")
        assert rita.post(f"/models/{alice_model}/finalize", json={}).status_code == 403
        assert rita.get(f"/models/{alice_model}").json()["labels"] == {}
        assert rita.get("/changes", params={"since": seq}).json()["changes"] == []
    with _api(team, "bob") as bob:
        denied = bob.patch(f"/models/{alice_model}", json={"labels": {"stage": "prod"}})
        assert denied.status_code == 403 and "created by 'alice'" in denied.json()["message"]
    with _api(team, "alice") as alice:
        saved = alice.patch(f"/models/{alice_model}", json={"labels": {"stage": "staging"}})
        assert saved.status_code == 200 and saved.json()["labels"] == {"stage": "staging"}
        assert alice.post(f"/models/{alice_model}/finalize", json={}).status_code == 403
    with _api(team, "ada") as ada:
        assert ada.post(f"/models/{alice_model}/finalize", json={}).json()["status"] == "final"
        changes = ada.get("/changes", params={"since": seq}).json()["changes"]
        assert [(c["object_id"], c["actor"]) for c in changes] == [(alice_model, "alice"), (alice_model, "ada")]


def test_login_form_sessions_carry_the_role_and_end_with_the_token(team, tmp_path):
    token = make_token(team.store, "carol", "writer")
    with httpx.Client(base_url=team.http, timeout=30) as browser:
        assert browser.get("/", follow_redirects=False).headers["location"] == "/login"
        assert browser.post("/login", data={"token": "mbx_000000000000_" + "x" * 43}).headers["location"] == "/login?failed=1"
        assert browser.post("/login", data={"token": token}).headers["location"] == "/"
        assert browser.get("/api/v1/session").json().items() >= {"user": "carol", "role": "writer", "login_required": True}.items()
        csrf = browser.get("/").cookies.get("mbx_csrf") or browser.cookies.get("mbx_csrf")
        model_id = _model_of(team, "ada", tmp_path)
        denied = browser.patch(f"/api/v1/models/{model_id}", json={"labels": {"x": "y"}}, headers={"x-csrf-token": csrf})
        assert denied.status_code == 403 and "created by 'ada'" in denied.json()["message"]
        code, out, err = modelbox("server", "token", "revoke", "carol", "--store", team.store)
        assert code == 0 and "revoked token" in out, err
        ended = browser.get("/api/v1/runs")
        assert ended.status_code == 401  # the session ended with its token
    with httpx.Client(base_url=team.http, timeout=30, headers={"authorization": f"Bearer {token}"}) as script:
        refused = script.get("/api/v1/runs")
        assert refused.status_code == 401 and "revoked" in refused.json()["message"]
    assert token not in open(team.log_path, encoding="utf-8", errors="replace").read()


def test_every_http_write_goes_through_one_policy_entry():
    writes = {e.handler.__name__ for e in ENDPOINTS if e.method not in READ_METHODS}
    assert writes - set(HTTP_RULES) == set(), "add an entry to server/policy.py HTTP_RULES for each new write route"


def test_a_client_reads_the_actor_of_local_writes(store_uri):
    """Embedded writes (autolog into SQLite, the CLI) record the OS user."""
    from modelbox_autolog._actor import local_actor

    mbx.autolog(backend=store_uri, experiment="local", frameworks=[], capture_console=False, capture_env=False)
    with mbx.start_run(name="mine") as run:
        run.log_param("lr", 0.1)
    assert mbx.flush(10)
    assert {c.actor for c in mbx.Client(store_uri).changes(0)} == {local_actor()}
    assert run.id


def test_modelbox_ui_alone_takes_the_tokens_of_the_store_it_reads(tmp_path):
    """``modelbox ui --backend sqlite:///...`` over a store with per-user tokens requires them,
    with the same roles, though no server runs."""
    from ..ui.conftest import UiProcess

    store = f"sqlite:///{tmp_path}/store/modelbox.db"
    reader, writer = make_token(store, "rita", "reader"), make_token(store, "walt", "writer")
    ui = UiProcess(store, str(tmp_path))
    try:
        assert httpx.get(ui.url + "/api/v1/runs").status_code == 401
        with httpx.Client(base_url=ui.url + "/api/v1", headers={"authorization": f"Bearer {reader}"}) as rita:
            assert rita.get("/runs").status_code == 200
            assert rita.get("/session").json()["role"] == "reader"
            assert rita.patch(f"/models/{new_id()}", json={"labels": {"a": "b"}}).status_code == 403
        with httpx.Client(base_url=ui.url + "/api/v1", headers={"authorization": f"Bearer {writer}"}) as walt:
            assert walt.patch(f"/models/{new_id()}", json={"labels": {"a": "b"}}).status_code == 404  # allowed; no such model
    finally:
        ui.stop()
