"""One bad record never blocks the rest: refused at the call when the call can tell, and dropped
alone (counted, with its reason) when a store refuses it later, live, on replay or in sync."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

import modelbox_autolog as mbx
from modelbox_autolog._journal import Journal
from modelbox_autolog._records import Artifact, Batch, RunStart, RunUpdate, new_id

from .conftest import child_env, run_script

pytestmark = pytest.mark.timeout(240)

POISON = "x" * 300 + "/plot.txt"  # a 300-byte file name: no filesystem takes it (ENAMETOOLONG)


@pytest.mark.parametrize("backend", ["sqlite", "grpc"])
def test_a_poison_artifact_name_then_10000_points_all_points_stored(backend, tmp_path, server_factory, figures):
    uri = f"sqlite:///{tmp_path}/store/modelbox.db" if backend == "sqlite" else server_factory().start().uri
    env = child_env(tmp_path)
    (tmp_path / "plot.txt").write_text("a plot")
    result = run_script(f"""
        import time
        import modelbox_autolog as mbx
        from modelbox_autolog import _exporter
        from modelbox_autolog._records import Artifact, new_id
        mbx.autolog(backend={uri!r}, frameworks=[], capture_console=False, capture_env=False)
        with mbx.start_run(name="poison") as run:
            print(run.id, flush=True)
            assert run.log_artifact({str(tmp_path / "plot.txt")!r}, name={POISON!r}) is None  # refused at the call
            # And one that got past the call (an older version's journal, an integration): the store refuses it.
            run._submit(Artifact(new_id(), run.id, {POISON!r}, {str(tmp_path / "plot.txt")!r}))
            for i in range(10_000):
                run.log_metric("loss", 0.5, step=i)
        print(mbx.flush(60))
        exporter = _exporter.all_exporters()[0]
        print(exporter.stats["rejected"], exporter.stats["dropped"], sorted(exporter.drop_reasons))
    """, env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    run_id, flushed, counts = lines[0], lines[1], lines[2]
    assert flushed == "False"  # a record was dropped, and flush says so
    rejected, dropped = map(int, counts.split()[:2])
    assert rejected == 1 and dropped == 1
    run = mbx.Client(uri).run(run_id)
    assert [p.step for p in run.metrics("loss")] == list(range(10_000)) and run.status == "finished"
    assert run.artifacts() == []
    assert "255 bytes" in result.stderr
    figures(backend=backend, logged=10_003, refused_at_call=1, dropped=1, stored=10_002)


@pytest.mark.parametrize("backend", ["sqlite", "grpc"])
def test_journal_replay_and_sync_skip_a_refused_record_and_report_it(backend, tmp_path, server_factory, figures):
    uri = f"sqlite:///{tmp_path}/store/modelbox.db" if backend == "sqlite" else server_factory().start().uri
    env = child_env(tmp_path)
    (tmp_path / "plot.txt").write_text("a plot")
    # A journal left by a process that died: a poison record among 10,000 good points, in two segments.
    run_id = new_id()
    for half in (0, 1):
        journal = Journal(str(tmp_path / "journal"), uri, new_id())
        records = [RunStart(run_id, "poisoned", "r", time.time())] if half == 0 else []
        records += [(run_id, "loss", 0.5, i, time.time(), None) for i in range(half * 5000, half * 5000 + 5000)]
        if half == 0:
            records.insert(2500, Artifact(new_id(), run_id, POISON, str(tmp_path / "plot.txt")))
        else:
            records.append(RunUpdate(run_id, status="finished", end_time=time.time()))
        journal.append(Batch(new_id(), journal.writer, records, time.time()))
        journal.close()
    if backend == "sqlite":  # replayed by the next process that writes there
        done = run_script(f"""
            import modelbox_autolog as mbx
            from modelbox_autolog import _exporter
            mbx.autolog(backend={uri!r}, frameworks=[], capture_console=False, capture_env=False)
            mbx.flush(60)  # (False if the refusal came after this call, True if before: either way it is counted)
            print(_exporter.all_exporters()[0].stats["dropped"])
        """, env)
        assert done.returncode == 0 and done.stdout.split() == ["1"], done.stderr
        assert "255 bytes" in done.stderr
    else:  # or by modelbox sync
        done = subprocess.run([sys.executable, "-m", "modelbox_autolog", "sync", str(tmp_path / "journal")], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr + done.stdout
        assert "1 record(s) refused and skipped" in done.stdout and "refused (skipped): Artifact" in done.stdout
    run = mbx.Client(uri).run(run_id)
    assert [p.step for p in run.metrics("loss")] == list(range(10_000)) and run.status == "finished"
    figures(backend=backend, journaled=10_003, replayed=10_002, refused_and_reported=1)
