"""autolog(): lazy (no framework imported), idempotent, reversible, precise about what is missing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import modelbox_autolog as mbx


def test_autolog_imports_no_framework_and_is_fast():
    code = (
        "import sys, time, json\n"
        "t = time.perf_counter()\n"
        "import modelbox_autolog as mbx\n"
        "mbx.autolog()\n"
        "elapsed = time.perf_counter() - t\n"
        "heavy = [m for m in ('torch','tensorflow','keras','sklearn','xgboost','lightgbm','catboost','fastai',"
        "'lightning','numpy','grpc','matplotlib','pandas') if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'elapsed': elapsed}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []


def test_autolog_is_idempotent_and_disable_cancels_hooks():
    mbx.autolog(frameworks=[])
    mbx.autolog()
    mbx.autolog()
    assert set(mbx.enabled_integrations()) >= {"sklearn", "keras", "pytorch"}
    mbx.autolog(disable=True)
    assert mbx.enabled_integrations() == {}


def test_unknown_framework_name_is_a_value_error():
    with pytest.raises(ValueError, match="unknown framework"):
        mbx.autolog(frameworks=["tensorflow-but-misspelt"])


def test_framework_asked_by_name_but_missing_names_the_extra():
    with pytest.raises(ImportError, match=r"MegEngine publishes no wheels"):
        mbx.autolog(frameworks=["megengine"])


def test_bad_log_every_n_steps_is_refused():
    with pytest.raises(ValueError, match="log_every_n_steps"):
        mbx.autolog(log_every_n_steps=0)


def test_env_configuration(monkeypatch, tmp_path):
    from modelbox_autolog import _config

    monkeypatch.setenv("MODELBOX_BACKEND", f"sqlite:///{tmp_path}/env.db")
    monkeypatch.setenv("MODELBOX_EXPERIMENT", "from-env")
    mbx.autolog(frameworks=[])
    assert _config.current().backend.endswith("env.db")
    assert _config.current().experiment_name() == "from-env"
    mbx.autolog(frameworks=[], experiment="kwarg")  # keyword beats environment
    assert _config.current().experiment_name() == "kwarg"


def test_non_zero_rank_logs_nothing(monkeypatch, store_uri, client):
    monkeypatch.setenv("RANK", "1")
    mbx.autolog(backend=store_uri, frameworks=[])
    with mbx.start_run() as run:
        run.log_metric("x", 1.0)
    assert isinstance(run, mbx.NullRun)
    mbx.flush(5)
    monkeypatch.setenv("RANK", "0")
    with mbx.start_run():
        pass
    mbx.flush(5)
    assert len(client.runs()) == 1
