"""The `modelbox` command against a real SQLite store."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import modelbox_autolog as mbx
from modelbox_autolog.cli import main


@pytest.fixture
def logged(store_uri, tmp_path):
    mbx.autolog(backend=store_uri, frameworks=[], experiment="cli", capture_console=False)
    (tmp_path / "m.bin").write_bytes(b"abc")
    with mbx.start_run(name="cli-run") as run:
        run.log_params({"lr": 0.1})
        for i in range(20):
            run.log_metrics({"loss": 1 / (i + 1), "acc": i / 20}, step=i)
        run.log_event("checkpoint_saved", path="c.pt", bytes=3)
        model = run.log_model(tmp_path / "m.bin", name="clf", framework="raw")
    assert mbx.flush(10)
    return store_uri, run, model


def test_runs_show_models_events(logged, capsys):
    uri, run, model = logged
    assert main(["--backend", uri, "runs"]) == 0
    out = capsys.readouterr().out
    assert "cli-run" in out and "finished" in out
    assert main(["--backend", uri, "show", run.id[:8]]) == 0
    out = capsys.readouterr().out
    assert "loss" in out and "lr" in out and "checkpoint_saved" in out and "clf" in out
    assert main(["--backend", uri, "models"]) == 0
    assert "clf" in capsys.readouterr().out
    assert main(["--backend", uri, "events", run.id]) == 0
    assert "c.pt" in capsys.readouterr().out
    assert main(["--backend", uri, "runs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["params"] == {"lr": 0.1}


def test_plot_png_and_html(logged, tmp_path):
    uri, run, _ = logged
    png, page = tmp_path / "out.png", tmp_path / "out.html"
    assert main(["--backend", uri, "plot", run.id, "loss", "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["--backend", uri, "plot", run.id, "-o", str(page)]) == 0
    text = page.read_text()
    assert "<svg" in text and "acc" in text and "loss" in text
    for fetch in ("<script src", "<link", 'href="http', "<img src=\"http"):  # self-contained: nothing to fetch
        assert fetch not in text


def test_download_by_model_url(logged, tmp_path, capsys):
    uri, _, model = logged
    assert main(["download", model.url, str(tmp_path / "dl")]) == 0
    assert (tmp_path / "dl" / "clf-v1" / "m.bin").read_bytes() == b"abc"


def test_clear_errors(logged, tmp_path, capsys):
    uri, run, _ = logged
    assert main(["--backend", uri, "show", "doesnotexist"]) == 2
    assert "no run with id 'doesnotexist'" in capsys.readouterr().err
    assert main(["--backend", "nosuch://x", "runs"]) == 2
    assert "unknown backend scheme" in capsys.readouterr().err
    assert main(["--backend", f"sqlite:///{tmp_path}/missing.db", "runs"]) == 2
    assert "no store at" in capsys.readouterr().err
    assert main(["--backend", uri, "plot", run.id, "nope", "-o", str(tmp_path / "x.png")]) == 2
    assert "has no metric 'nope'" in capsys.readouterr().err


def test_watch_resumes_from_a_sequence(logged, capsys):
    uri, _, _ = logged
    assert main(["--backend", uri, "watch", "--since", "0", "--timeout", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "created   run" in out and "model" in out


def test_sync_command_and_module_entry_point(tmp_path, store_uri):
    spool = tmp_path / "spool"
    mbx.autolog(backend=f"file://{spool}", frameworks=[], capture_console=False)
    with mbx.start_run(name="offline"):
        pass
    assert mbx.flush(10)
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "modelbox_autolog", "sync", str(spool), "--to", store_uri],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
    assert [r.name for r in mbx.Client(store_uri).runs()] == ["offline"]
