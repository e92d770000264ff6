"""What every client SDK must do against a real ``modelbox server``; each language's test module
subclasses ``SdkContract`` and provides its ``tool`` fixture (the SDK's command-line tool)."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import modelbox_autolog as mbx
from modelbox_autolog.backends.base import NotFound
from tests._components import require_binary

from .conftest import TOKEN, Tool, wait_port

POINTS = 100_000
KEYS = 2


def check_logged_run(uri: str, run_id: str, sdk: str, points: int = POINTS, keys: int = KEYS) -> None:
    """Read a run the tool logged back through the Python Client: exact counts, values, no duplicates."""
    run = mbx.Client(uri).run(run_id)
    assert run.status == "finished"
    assert run.tags == {"sdk": sdk}
    assert run.progress == 1.0
    assert run.params == {"lr": 0.001, "optimizer.name": "adam", "optimizer.betas": [0.9, 0.99], "points": points}
    assert sorted(run.metric_keys()) == [f"metric_{k}" for k in range(keys)]
    per_key = points // keys
    for k in range(keys):
        series = run.metrics(f"metric_{k}")
        assert len(series) == per_key, f"metric_{k}: {len(series)} points stored, {per_key} logged"
        assert sorted(p.step for p in series) == list(range(per_key))  # each step once: no duplicate
        assert all(p.value == p.step * 0.5 + k and p.epoch == p.step // 1000 for p in series)
    events = {e.name: e for e in run.events()}
    assert sorted(events) == ["done", "logging"]
    assert events["logging"].duration_s is not None and events["logging"].attrs == {"points": points}


class SdkContract:
    language: str  # "go" | "cpp": the run tag the tool sets

    def test_logs_100k_points_once_despite_a_lost_answer(self, tool: Tool, token_server, token_env):
        # The 2nd WriteBatch is stored by the server, but its answer is "lost" by a client
        # interceptor: the SDK re-sends the same batch id, and the server must not store it twice.
        lines = tool.run("log", "--uri", token_server.uri, "--points", str(POINTS), "--keys", str(KEYS), "--lose-ack", "2")
        run_id, stats = lines[-1]["run_id"], lines[-1]["stats"]
        assert stats["duplicates"] == 1 and stats["retries"] >= 1
        assert stats["dropped"] == 0 and stats["pending"] == 0 and stats["stored"] == stats["logged"]
        assert stats["logged"] > POINTS  # the points, plus the run start, params, events and updates
        check_logged_run(token_server.uri, run_id, self.language)

        # The SDK's own read side gives the same answers.
        read = tool.run("read", "--uri", token_server.uri, "--run", run_id[:8])[-1]
        assert read["id"] == run_id and read["status"] == "finished" and read["ended"] is True
        assert read["counts"] == {f"metric_{k}": POINTS // KEYS for k in range(KEYS)}
        assert read["distinct_steps"] == read["counts"]
        assert sorted(read["events"]) == ["done", "logging"]
        assert read["params"]["optimizer.betas"] == [0.9, 0.99] and read["params"]["points"] == POINTS
        assert read["runs_in_experiment"] >= 1 and read["models"] == []

    def test_logging_and_watching_survive_a_server_restart(self, tool: Tool, own_server, token_env):
        server = own_server.start()
        watcher = tool.start("watch", "--uri", server.uri, "--since", "-1", "--count", "1000000", "--timeout-s", "120")
        logger = None
        try:
            since = watcher.next()["watching_from"]
            # 100,000 points at 40,000/s: the server is killed (SIGKILL) and restarted meanwhile.
            logger = tool.start("log", "--uri", server.uri, "--points", str(POINTS), "--rate", "40000")
            run_id = logger.next()["run_id"]
            time.sleep(0.8)
            server.kill()
            time.sleep(0.3)
            server.start()
            assert logger.wait() == 0, logger.stderr
            final = logger.next()
            # Calls wait for the channel to reconnect, so a batch may have waited rather than failed.
            assert final["run_id"] == run_id and final["stats"]["dropped"] == 0, final
            check_logged_run(server.uri, run_id, self.language)

            # The watcher reconnected and resumed after the last event it had: every change once, in order.
            last = mbx.Client(server.uri).store.last_change_seq()
            seen = watcher.until(lambda line: line.get("seq") == last, timeout=60)
            assert [line["seq"] for line in seen] == list(range(since + 1, last + 1))
            mine = [(line["kind"], line["object_type"]) for line in seen if line["object_id"] == run_id]
            assert ("created", "run") in mine and ("updated", "run") in mine and ("appended", "metrics") in mine
            assert {line["actor"] for line in seen if line["object_id"] == run_id} == {"token"}  # one-token mode
            appended = sum(line["payload"]["count"] for line in seen
                           if line["object_id"] == run_id and line["object_type"] == "metrics")
            assert appended == POINTS
        finally:
            watcher.stop()
            if logger is not None:
                logger.stop()

    def test_downloads_an_autologged_sklearn_model(self, tool: Tool, token_server, token_env, tmp_path):
        from sklearn.linear_model import LogisticRegression

        client = mbx.Client(token_server.uri)
        before = {m.id for m in client.models()}
        mbx.autolog(backend=token_server.uri, experiment=f"sdk-{self.language}-sklearn", capture_console=False)
        rng = np.random.default_rng(0)
        X = rng.normal(size=(80, 4))
        LogisticRegression(max_iter=200).fit(X, (X[:, 0] + X[:, 1] > 0).astype(int))
        assert mbx.flush(30)
        (model,) = [m for m in client.models() if m.id not in before]
        recorded = {f.name: f.sha256 for f in model.files}
        assert recorded and all(recorded.values())

        # By a unique id prefix: the reference is resolved by the server.
        lines = tool.run("download", "--uri", token_server.uri, "--model", model.id[:10], "--dest", str(tmp_path / "sdk"))
        got = {line["name"]: line for line in lines}
        assert set(got) == set(recorded)
        python_dir = Path(client.download_model(model.id, tmp_path / "python"))
        for name, line in got.items():
            on_disk = hashlib.sha256(Path(line["path"]).read_bytes()).hexdigest()
            by_python = hashlib.sha256((python_dir / name).read_bytes()).hexdigest()
            assert line["sha256"] == on_disk == by_python == recorded[name]
            assert line["model_id"] == model.id
            assert line["path"].startswith(str(tmp_path / "sdk" / f"{model.name}-v{model.version}"))

        # The SDK lists the run's models too.
        assert tool.run("read", "--uri", token_server.uri, "--run", model.run_id)[-1]["models"] == [model.id]

        # The example program prints "sha256  path" per file, as sha256sum does.
        proc = subprocess.run([str(tool.example), token_server.uri, model.id, str(tmp_path / "example")],
                              env=tool.env(), capture_output=True, text=True, timeout=60, check=True)
        printed = dict(line.split("  ", 1)[::-1] for line in proc.stdout.splitlines())
        assert sorted(printed.values()) == sorted(recorded.values())

        # NAME@ALIAS goes to the server as given and is resolved there: the SDK needs no registry code.
        client.set_alias(model.name, "production", model.version)
        lines = tool.run("download", "--uri", token_server.uri, "--model", f"{model.name}@production",
                         "--dest", str(tmp_path / "alias"))
        assert {line["name"]: line["sha256"] for line in lines} == recorded and {line["model_id"] for line in lines} == {model.id}
        lines = tool.run("download", "--uri", token_server.uri, "--model", f"{model.name}@no-such-alias",
                         "--dest", str(tmp_path / "no-alias"), check=False)
        assert tool.last_returncode == 1
        assert f"{model.name}@no-such-alias" in lines[-1]["error"] and "its aliases: production" in lines[-1]["error"]
        assert any(code in lines[-1]["error"] for code in ("NOT_FOUND", "NotFound"))

    def test_an_unreachable_server_costs_the_close_deadline_and_is_counted(self, tool: Tool):
        from tests.server.conftest import free_port

        started = time.monotonic()
        lines = tool.run("log", "--uri", f"grpc://127.0.0.1:{free_port()}", "--points", "5000", "--close-timeout-s", "1",
                         check=False, timeout=60)
        assert tool.last_returncode == 1
        assert time.monotonic() - started < 20  # End and Close each wait one second, not the call timeouts
        stats = lines[-1]["stats"]
        assert stats["stored"] == 0 and stats["pending"] == 0 and stats["dropped"] == stats["logged"] > 5000
        assert any("deadline" in reason for reason in stats["drop_reasons"])

    def test_grpcs_with_a_private_ca(self, tool: Tool, own_server, tmp_path, monkeypatch):
        require_binary("openssl", "apt-get install openssl")
        key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                        "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       capture_output=True, timeout=60, check=True)
        own_server.extra += ["--tls-cert", str(cert), "--tls-key", str(key)]
        own_server.wait_serving = lambda: wait_port(own_server)  # the plain health probe cannot speak TLS
        own_server.start()
        uri = f"grpcs://127.0.0.1:{own_server.port}"
        lines = tool.run("log", "--uri", uri, "--points", "2000", env={"MODELBOX_TLS_CA": str(cert)})
        monkeypatch.setenv("MODELBOX_TLS_CA", str(cert))
        monkeypatch.setenv("MODELBOX_TOKEN", TOKEN)
        check_logged_run(uri, lines[-1]["run_id"], self.language, points=2000)

    def test_a_wrong_token_is_refused_and_counted(self, tool: Tool, token_server, token_env):
        lines = tool.run("log", "--uri", token_server.uri, "--points", "1000", token="wrong", check=False)
        assert tool.last_returncode == 1
        run_id, stats = lines[-1]["run_id"], lines[-1]["stats"]
        assert stats["stored"] == 0 and stats["dropped"] == stats["logged"] > 1000
        assert any("token" in reason for reason in stats["drop_reasons"])
        assert "refused the token" in tool.last_stderr
        with pytest.raises(NotFound):
            mbx.Client(token_server.uri).run(run_id)  # nothing of it was stored

        tool.run("read", "--uri", token_server.uri, "--run", run_id, token="wrong", check=False)
        assert tool.last_returncode == 1 and "refused the token" in tool.last_stderr

