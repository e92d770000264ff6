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


def test_autolog_opens_the_backend_before_any_run(tmp_path):
    """The first fit must not share the GIL with opening the store: autolog() starts it (and
    waits briefly for it), so the store exists before anything is logged."""
    db = tmp_path / "warm" / "modelbox.db"
    code = (
        "import sys, modelbox_autolog as mbx\n"
        "from modelbox_autolog import _exporter\n"
        "from modelbox_autolog.backends import canonical_uri\n"
        f"uri = {f'sqlite:///{db}'!r}\n"
        "mbx.autolog(backend=uri, silent=True)\n"
        "exporter = _exporter.exporter_for(canonical_uri(uri), None)\n"
        "print(exporter.opened.wait(30))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == "True"
    assert db.exists()


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


PLUGIN_MODULE = '''
from modelbox_autolog.integrations.base import Integration
from modelbox_autolog._run import autorun


class ToyPluginIntegration(Integration):
    name = "toyplug"
    modules = ("toyplug_lib",)

    def setup(self, module):
        self.patch(module, "train", self._hook)

    def _hook(self, call):
        with autorun("toyplug", name="toyplug-train") as run:
            result = yield None
            run.log_metric("score", float(result))
'''


def test_third_party_integration_is_found_through_its_entry_point(tmp_path, monkeypatch, store_uri, client):
    import time

    from modelbox_autolog import _plugins

    site = tmp_path / "site"
    (site / "toyplug-1.0.dist-info").mkdir(parents=True)
    (site / "toyplug-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplug\nVersion: 1.0\n")
    (site / "toyplug-1.0.dist-info" / "entry_points.txt").write_text(
        "[modelbox_autolog.integrations]\ntoyplug = toyplug_integration:ToyPluginIntegration\n")
    (site / "toyplug_integration.py").write_text(PLUGIN_MODULE)
    (site / "toyplug_lib.py").write_text("def train(x):\n    return x * 2\n")
    monkeypatch.syspath_prepend(str(site))
    assert [e.name for e in _plugins.integration_entry_points()] == ["toyplug"]

    mbx.autolog(backend=store_uri, capture_console=False)
    deadline = time.monotonic() + 10
    while "toyplug" not in mbx.enabled_integrations() and time.monotonic() < deadline:
        time.sleep(0.01)  # entry points are read on a background thread
    import toyplug_lib

    try:
        assert toyplug_lib.train(21) == 42
        assert mbx.enabled_integrations()["toyplug"] is True
        mbx.flush(10)
        [run] = client.runs()
        assert run.tags["framework"] == "toyplug"
        assert run.metrics("score")[-1].value == 42.0
    finally:
        mbx.autolog(disable=True)
        sys.modules.pop("toyplug_lib", None)
        sys.modules.pop("toyplug_integration", None)
    assert toyplug_lib.train(1) == 2


def test_no_plugin_declared_means_no_metadata_parse(tmp_path, monkeypatch):
    from modelbox_autolog import _plugins

    site = tmp_path / "site"
    (site / "other-1.0.dist-info").mkdir(parents=True)
    (site / "other-1.0.dist-info" / "entry_points.txt").write_text("[console_scripts]\nother = other:main\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(_plugins, "_read", lambda: pytest.fail("importlib.metadata parsed without need"))
    assert _plugins.integration_entry_points() == []


def test_none_declared_is_remembered_until_a_distribution_is_installed(tmp_path, monkeypatch):
    import os

    from modelbox_autolog import _plugins

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    note_dir = str(tmp_path / "state")
    assert not _plugins.known_to_be_none(note_dir)  # nobody looked yet
    assert _plugins.integration_entry_points(note_dir) == []
    monkeypatch.setattr(_plugins, "_cache", {})  # a new process
    assert _plugins.known_to_be_none(note_dir)

    monkeypatch.setattr(_plugins, "_cache", {})
    (site / "late-1.0.dist-info").mkdir()  # an install changes the folder
    os.utime(site, ns=(0, os.stat(site).st_mtime_ns + 1_000_000_000))
    assert not _plugins.known_to_be_none(note_dir)


@pytest.mark.parametrize("content", [
    '{"none_declared_for": [["/some/folder", 1], ["/other", 2]]}',  # one stamp, as older versions wrote it
    '{"none_declared_for": [[1, 2], "x", null]}',
    '{"none_declared_for": 7}',
    "[1, 2]",
    "not json",
])
def test_a_note_of_another_shape_is_replaced_not_fatal(tmp_path, monkeypatch, content):
    import os

    from modelbox_autolog import _plugins

    monkeypatch.setattr(_plugins, "_cache", {})

    note_dir = tmp_path / "state"
    note_dir.mkdir()
    (note_dir / _plugins.NOTE_NAME).write_text(content)
    assert not _plugins.known_to_be_none(str(note_dir))
    assert _plugins.integration_entry_points(str(note_dir)) == []
    stamps = json.loads((note_dir / _plugins.NOTE_NAME).read_text())["none_declared_for"]
    assert [entry[0] for entry in stamps[0]] == [os.path.abspath(p or os.curdir) for p in sys.path]
    monkeypatch.setattr(_plugins, "_cache", {})  # a new process
    assert _plugins.known_to_be_none(str(note_dir))


def test_the_note_remembers_several_sys_path_layouts(tmp_path, monkeypatch):
    from modelbox_autolog import _plugins

    note_dir = str(tmp_path / "state")
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    original = list(sys.path)
    for folder in (first, second):  # two scripts in two folders, each with its own sys.path[0]
        monkeypatch.setattr(sys, "path", [str(folder), *original])
        monkeypatch.setattr(_plugins, "_cache", {})
        assert _plugins.integration_entry_points(note_dir) == []
    for folder in (first, second):
        monkeypatch.setattr(sys, "path", [str(folder), *original])
        monkeypatch.setattr(_plugins, "_cache", {})
        assert _plugins.known_to_be_none(note_dir)
