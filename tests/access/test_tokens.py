"""Per-user tokens: made, listed and revoked on the command line, stored hashed, refused at the
next call once revoked; one-token mode and the open local server keep working as before."""

from __future__ import annotations

import glob
import hashlib
import json
import subprocess
import time

import grpc
import pytest

from modelbox_autolog._records import Batch, RunStart, new_id
from modelbox_autolog.backends import BackendError
from modelbox_autolog.proto.modelbox.v1 import service_pb2 as spb
from modelbox_autolog.proto.modelbox.v1 import service_pb2_grpc as sgrpc

from .conftest import TeamServer, make_token, modelbox, token_env


def _call(port: int, token: str | None) -> grpc.StatusCode:
    """ListExperiments with ``token``; the status code it gets."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        try:
            sgrpc.ModelBoxStub(channel).ListExperiments(spb.ListExperimentsRequest(), metadata=metadata, timeout=10)
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            return exc.code()


def test_tokens_are_stored_hashed_listed_without_secrets_and_revoked(team):
    token = make_token(team.store, "dora", "writer")
    token_id, secret = token.split("_")[1], token.split("_")[2]
    assert _call(team.port, token) == grpc.StatusCode.OK

    # At rest: the sha256 of the token, never the token or its secret part.
    if team.kind == "sqlite":
        stored = b"".join(open(path, "rb").read() for path in glob.glob(team.store[len("sqlite:///"):] + "*"))
    else:
        import psycopg

        with psycopg.connect(team.store) as conn:
            rows = conn.execute("SELECT * FROM access_tokens").fetchall() + conn.execute("SELECT * FROM changes").fetchall()
        stored = repr(rows).encode()
    assert secret.encode() not in stored and token.encode() not in stored
    assert hashlib.sha256(token.encode()).hexdigest().encode() in stored
    assert token not in open(team.log_path, encoding="utf-8", errors="replace").read()

    code, out, err = modelbox("server", "token", "list", "--store", team.store, "--json")
    assert code == 0, err
    listed = {t["id"]: t for t in json.loads(out)}
    assert listed[token_id]["user"] == "dora" and listed[token_id]["role"] == "writer" and listed[token_id]["revoked_at"] is None
    assert secret not in out
    code, out, _ = modelbox("server", "token", "list", "--store", team.store)
    assert code == 0 and "dora" in out and token_id in out and secret not in out

    # Revoked: UNAUTHENTICATED at the very next call, saying so; the feed records who revoked it.
    code, out, err = modelbox("server", "token", "revoke", token_id, "--store", team.store)
    assert code == 0 and f"revoked token {token_id} of 'dora'" in out, err
    with grpc.insecure_channel(f"127.0.0.1:{team.port}") as channel, pytest.raises(grpc.RpcError) as refused:
        sgrpc.ModelBoxStub(channel).ListExperiments(spb.ListExperimentsRequest(),
                                                    metadata=(("authorization", f"Bearer {token}"),), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert f"token {token_id} of 'dora' was revoked" in refused.value.details() and secret not in refused.value.details()
    revoked = [c for c in team.client("rita").changes(0) if c.object_type == "token" and c.kind == "revoked"]
    assert [c.object_id for c in revoked][-1] == token_id
    code, _, err = modelbox("server", "token", "revoke", token_id, "--store", team.store)
    assert code == 2 and "no token in force" in err


def test_revoking_a_user_revokes_all_their_tokens_and_bad_input_is_refused(tmp_path):
    store = f"sqlite:///{tmp_path}/store/modelbox.db"
    first, second = make_token(store, "erin", "reader"), make_token(store, "erin", "admin")
    assert first != second
    code, out, _ = modelbox("server", "token", "revoke", "erin", "--store", store)
    assert code == 0 and out.count("revoked token") == 2
    code, _, err = modelbox("server", "token", "create", "frank", "--role", "owner", "--store", store)
    assert code == 2 and "invalid choice" in err
    for reserved in ("token", "anonymous"):
        code, _, err = modelbox("server", "token", "create", reserved, "--role", "reader", "--store", store)
        assert code == 2 and "reserved" in err
    code, _, err = modelbox("server", "token", "create", "bad name!", "--role", "reader", "--store", store)
    assert code == 2 and "user name" in err


def test_an_open_server_closes_once_a_token_exists(tmp_path):
    server = TeamServer(str(tmp_path / "open"), f"sqlite:///{tmp_path}/open/store/modelbox.db").start()
    try:
        assert _call(server.port, None) == grpc.StatusCode.OK
        server.tokens["anyone"] = None
        run_id = new_id()
        server.backend("anyone").write(Batch(new_id(), "w", [RunStart(run_id, "open", "open-run", time.time())], time.time()))
        token = make_token(server.store, "gina", "writer")
        time.sleep(1.2)  # an open server looks for tokens at most once a second
        assert _call(server.port, None) == grpc.StatusCode.UNAUTHENTICATED
        assert _call(server.port, "some-old-shared-token") == grpc.StatusCode.UNAUTHENTICATED
        assert _call(server.port, token) == grpc.StatusCode.OK
        server.tokens["gina"] = token
        actors = {c.object_id: c.actor for c in server.client("gina").changes(0) if c.object_type == "run"}
        assert actors[run_id] == "anonymous"
    finally:
        server.stop()


def test_one_token_mode_is_unchanged_and_per_user_tokens_work_beside_it(tmp_path):
    store = f"sqlite:///{tmp_path}/one/store/modelbox.db"
    server = TeamServer(str(tmp_path / "one"), store, "--token", "shared-s3cret").start()
    try:
        assert _call(server.port, "shared-s3cret") == grpc.StatusCode.OK
        assert _call(server.port, "wrong") == grpc.StatusCode.UNAUTHENTICATED
        assert _call(server.port, None) == grpc.StatusCode.UNAUTHENTICATED
        server.tokens.update(shared="shared-s3cret", hana=make_token(store, "hana", "reader"))
        run_id = new_id()
        server.backend("shared").write(Batch(new_id(), "w", [RunStart(run_id, "one", "shared-run", time.time())], time.time()))
        with pytest.raises(BackendError, match="may only read"):
            server.backend("hana").write(Batch(new_id(), "w", [RunStart(new_id(), "one", "x", time.time())], time.time()))
        assert {c.actor for c in server.client("hana").changes(0) if c.object_id == run_id} == {"token"}
    finally:
        server.stop()
    with token_env(None):
        code, _, err = modelbox("server", "--store", store, "--port", "0", "--token", make_token(store, "ivan", "admin"))
    assert code == 2 and "per-user token" in err


def test_a_revoked_token_journals_records_until_sync_with_a_new_token(team, tmp_path):
    """Revoked mid-run: the next batches are refused (UNAUTHENTICATED), the records wait in the
    journal with one message saying how to fix the token, and ``modelbox sync`` sends them once
    MODELBOX_TOKEN holds a new token of the same user (who owns the run)."""
    from ..faults.conftest import child_env, script

    token = make_token(team.store, "carol", "writer")
    env = child_env(tmp_path, MODELBOX_TOKEN=token)
    child = subprocess.Popen(script(f"""
        import sys
        import modelbox_autolog as mbx
        mbx.autolog(backend={team.uri!r}, frameworks=[], capture_console=False, capture_env=False)
        with mbx.start_run(name="revoked-midway") as run:
            for i in range(1000):
                run.log_metric("loss", 1.0, step=i)
            assert mbx.flush(60)
            print(run.id, flush=True)
            sys.stdin.readline()  # the token is revoked meanwhile
            for i in range(1000, 2000):
                run.log_metric("loss", 0.5, step=i)
            run.log_params({{"after": "revocation"}})
    """), env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_id = child.stdout.readline().strip()
    assert run_id, child.stderr.read()
    code, out, err = modelbox("server", "token", "revoke", "carol", "--store", team.store)
    assert code == 0, err
    _, stderr = child.communicate("go\n", timeout=120)
    assert child.returncode == 0, stderr
    ours = [line for line in stderr.splitlines() if line.startswith("modelbox-autolog:")]
    assert len(ours) == 2, stderr  # one message about the token (how to fix it), one exit line
    assert "was revoked" in ours[0] and "MODELBOX_TOKEN" in ours[0] and "modelbox sync" in ours[0]
    assert token not in stderr
    journal = ours[1].split(" are kept in the journal ")[1].split(";")[0]
    reader = team.client("rita")
    # the first half only; the process is gone, so liveness may have called the run killed meanwhile
    assert len(reader.run(run_id).metrics("loss")) == 1000 and reader.run(run_id).status in ("running", "killed")

    code, out, _ = modelbox("sync", journal, token=token)
    assert code == 3 and "MODELBOX_TOKEN" in out  # still the revoked token: nothing lost, nothing sent
    code, out, err = modelbox("sync", journal, token=make_token(team.store, "carol", "writer"))
    assert code == 0, err + out
    run = reader.run(run_id)
    assert [p.step for p in run.metrics("loss")] == list(range(2000)) and run.status == "finished"
    assert run.params["after"] == "revocation"
    history = [c for c in reader.changes(0, 100_000) if c.object_id == run_id]
    assert {c.actor for c in history} <= {"carol", "liveness"}
    assert [c.actor for c in history if c.object_type == "run" and c.payload.get("status") == "finished"] == ["carol"]
