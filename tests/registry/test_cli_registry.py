"""The ``modelbox`` command on a real store: registry and lifecycle commands, export, compare and
plots, and the rough edges of browsing (folded child runs, unknown experiments, short prefixes,
long params, booleans, a closed pipe, a plain-text client meeting a TLS server)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import subprocess
import sys

import pytest

import modelbox_autolog as mbx
from modelbox_autolog.cli import main as modelbox
from tests.ui.conftest import subprocess_env


@pytest.fixture
def store(tmp_path, monkeypatch):
    """Two runs of one experiment (one with 7 child runs), NaN and inf points, a model, an artifact."""
    uri = f"sqlite:///{tmp_path}/store/modelbox.db"
    monkeypatch.chdir(tmp_path)
    mbx.autolog(backend=uri, frameworks=[], experiment="mnist", capture_console=False, capture_env=False)
    (tmp_path / "weights.bin").write_bytes(os.urandom(2048))
    with mbx.start_run(name="parent") as parent:
        parent.log_params({"lr": 0.1, "augment": True, "notes": "x" * 5000})
        parent.set_tags({"debug": True})
        for step in range(12):
            parent.log_metrics({"train_loss": 1 / (step + 1), "val_loss": 1.3 / (step + 1)}, step=step)
        parent.log_metric("val_loss", math.nan, step=12)
        parent.log_metric("val_loss", math.inf, step=13)
        parent.log_metric("test_acc", 0.91)
        parent.log_artifact(str(tmp_path / "weights.bin"))
        parent.log_model(str(tmp_path / "weights.bin"), name="clf", labels={"stage": "dev"})
        for child in range(7):
            with mbx.start_run(name=f"trial-{child}", experiment="mnist") as run:
                run.log_param("lr", child / 10)
    with mbx.start_run(name="other") as other:
        other.log_params({"lr": 0.2, "augment": False, "notes": "x" * 5000})
        for step in range(12):
            other.log_metrics({"train_loss": 2 / (step + 1), "val_loss": 2.1 / (step + 1)}, step=step)
    assert mbx.flush(30)
    monkeypatch.setenv("MODELBOX_BACKEND", uri)
    return {"uri": uri, "parent": parent.id, "other": other.id, "folder": tmp_path}


def test_browsing_rough_edges(store, capsys):
    assert modelbox(["runs"]) == 0
    out = capsys.readouterr().out
    assert "children" in out and "└" in out and "trial-6" in out and "2 more" in out  # folded under the parent
    assert modelbox(["runs", "--flat", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 9
    assert modelbox(["runs", "-e", "mnsit"]) == 2
    err = capsys.readouterr().err
    assert "no experiment 'mnsit'" in err and "did you mean 'mnist'" in err
    assert modelbox(["show", store["parent"][:3]]) == 2
    assert "too short" in capsys.readouterr().err
    assert modelbox(["show", store["parent"]]) == 0
    out = capsys.readouterr().out
    flat = "".join(out.replace("│", "").split())  # the table wraps long cells
    assert "5,000characters;--jsonshowsall" in flat and "x" * 5000 not in flat
    assert "debug=true" in out and "augment" in out and "True" not in out  # booleans print one way
    assert modelbox(["show", store["parent"], "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["params"]["notes"] == "x" * 5000 and doc["tags"]["debug"] == "true"
    assert modelbox(["models", "--label", "stage"]) == 0
    assert "clf" in capsys.readouterr().out
    assert modelbox(["models", "--label", "stage=prod", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert modelbox(["runs", "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    parent = next(r for r in rows if r["id"] == store["parent"])
    assert parent["params.lr"] == "0.1" and parent["params.augment"] == "true" and parent["metrics.val_loss"] == "inf"


def test_a_closed_pipe_ends_quietly(store):
    env = subprocess_env(MODELBOX_BACKEND=store["uri"])
    result = subprocess.run(f"{sys.executable} -m modelbox_autolog runs --flat --json | head -1", shell=True,
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.stdout == "[\n" and "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


def test_export_formats(store, capsys, tmp_path):
    run_id = store["parent"]
    assert modelbox(["export", run_id, "--format", "csv", "--metric", "val_loss"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["step"] for r in rows] == [str(s) for s in range(14)]
    assert math.isnan(float(rows[12]["value"])) and float(rows[13]["value"]) == math.inf
    assert modelbox(["export", run_id, "-f", "json", "-o", str(tmp_path / "m.json")]) == 0
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["run"]["params"]["lr"] == 0.1 and set(doc["metrics"]) == {"train_loss", "val_loss", "test_acc"}
    assert doc["metrics"]["val_loss"][12]["value"] == "NaN" and doc["metrics"]["val_loss"][13]["value"] == "Infinity"
    pq = pytest.importorskip("pyarrow.parquet")
    assert modelbox(["export", run_id, "-f", "parquet", "-o", str(tmp_path / "m.parquet")]) == 0
    table = pq.read_table(tmp_path / "m.parquet").to_pydict()
    assert len(table["value"]) == 12 + 14 + 1 and math.isnan(table["value"][table["step"].index(12, 12)])
    assert modelbox(["export", run_id, "-f", "parquet"]) == 2  # binary: a file is needed
    assert "-o FILE" in capsys.readouterr().err


def test_compare_and_plot(store, capsys, tmp_path):
    a, b = store["parent"], store["other"]
    assert modelbox(["compare", a, b, "-o", str(tmp_path / "cmp.html")]) == 0
    page = (tmp_path / "cmp.html").read_text()
    assert page.count("<svg") == 1 and "train_loss" in page and "val_loss" in page
    assert '<tr class="diff"><td>lr</td>' in page and '<tr class="diff"><td>augment</td>' in page
    assert '<tr><td>notes</td>' in page  # the same in both: not highlighted
    assert modelbox(["compare", a, b, "--metric", "val_loss", "-o", str(tmp_path / "cmp.png")]) == 0
    assert (tmp_path / "cmp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert modelbox(["compare", a, "-o", str(tmp_path / "one.png")]) == 2

    assert modelbox(["plot", a, "train_loss", "val_loss", "-o", str(tmp_path / "losses.html")]) == 0
    page = (tmp_path / "losses.html").read_text()
    assert page.count("<svg") == 1 and "val_loss: NaN (1)" in page and "val_loss: +inf (1)" in page
    assert modelbox(["plot", a, "-o", str(tmp_path / "all.html")]) == 0
    page = (tmp_path / "all.html").read_text()
    assert "Single values" in page and "test_acc" in page and "train_loss, val_loss" in page  # related metrics together


def test_registry_and_lifecycle_commands(store, capsys, tmp_path):
    assert modelbox(["register", str(tmp_path / "weights.bin"), "--name", "clf", "--label", "src=upload"]) == 0
    assert "registered clf v2" in capsys.readouterr().out
    assert modelbox(["register", "s3://bucket/models/clf", "--name", "clf"]) == 0
    assert modelbox(["alias", "set", "clf", "production", "2"]) == 0
    assert "clf@production -> v2" in capsys.readouterr().out
    assert modelbox(["model", "clf@production"]) == 0
    assert json.loads(capsys.readouterr().out)["aliases"] == ["production"]
    assert modelbox(["model", "clf@staging"]) == 2
    assert "its aliases: production (v2)" in capsys.readouterr().err
    assert modelbox(["label", "clf@1", "owner=ana", "--remove", "stage"]) == 0
    assert "labels: owner=ana" in capsys.readouterr().out
    assert modelbox(["download", "clf@production", str(tmp_path / "dl")]) == 0
    assert os.path.getsize(tmp_path / "dl" / "clf-v2" / "weights.bin") == 2048
    assert modelbox(["download", store["parent"], str(tmp_path / "arts")]) == 0  # a run: its artifacts
    assert os.listdir(tmp_path / "arts") == ["weights.bin"]

    run_id = store["other"]
    assert modelbox(["tag", run_id, "reviewed=yes"]) == 0 and modelbox(["rename", run_id, "other-v2"]) == 0
    assert modelbox(["note", run_id, "lr too high"]) == 0
    capsys.readouterr()
    assert modelbox(["show", run_id]) == 0
    out = capsys.readouterr().out
    assert "other-v2" in out and "reviewed=yes" in out and "note: lr too high" in out
    assert modelbox(["archive", run_id]) == 0 and modelbox(["runs", "--flat", "--json"]) == 0
    capsys.readouterr()
    assert modelbox(["runs", "--flat", "--json"]) == 0
    assert run_id not in capsys.readouterr().out
    assert modelbox(["runs", "--archived", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [run_id]
    assert modelbox(["restore", run_id]) == 0

    assert modelbox(["delete", run_id]) == 2  # not a terminal: needs --yes
    assert "needs --yes" in capsys.readouterr().err
    assert modelbox(["delete", store["parent"], "--yes"]) == 0  # its model v1 is neither final nor aliased
    assert "8 runs, 1 models" in capsys.readouterr().out
    assert modelbox(["delete", "--model", "clf@production", "--yes"]) == 2
    assert "clf@production" in capsys.readouterr().err

    orphan = os.path.join(store["folder"], "store", "artifacts", "runs", "x", "y", "left.bin")
    os.makedirs(os.path.dirname(orphan))
    with open(orphan, "wb") as handle:
        handle.write(b"1234")
    os.utime(orphan, (1e6, 1e6))
    assert modelbox(["gc"]) == 0
    out = capsys.readouterr().out
    assert "would remove 1 unreferenced files" in out and os.path.exists(orphan)
    assert modelbox(["gc", "--yes"]) == 0 and not os.path.exists(orphan)


def test_plain_text_client_against_a_tls_server_suggests_grpcs(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl cannot make a test certificate here")
    from tests.server.conftest import ServerProcess
    from tests.server.test_grpc_server import _wait_port

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   capture_output=True, timeout=60, check=True)
    server = ServerProcess(str(tmp_path / "server"), "--tls-cert", str(cert), "--tls-key", str(key))
    server.wait_serving = lambda: _wait_port(server)
    try:
        server.start()
        with pytest.raises(mbx.BackendError, match=f"grpcs://127.0.0.1:{server.port}"):
            mbx.Client(f"grpc://127.0.0.1:{server.port}").experiments()
    finally:
        server.stop()
