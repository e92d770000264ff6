"""Forked children and many threads: children never end their parent's runs, replays never move a
status backwards, and automatic steps stay unique across threads."""

from __future__ import annotations

import threading

import pytest

import modelbox_autolog as mbx

from .conftest import child_env, run_script

pytestmark = pytest.mark.timeout(180)


def test_forked_children_exiting_normally_never_end_the_parents_run(tmp_path, figures):
    uri = f"sqlite:///{tmp_path}/store/modelbox.db"
    result = run_script(f"""
        import os, sys
        import modelbox_autolog as mbx
        mbx.autolog(backend={uri!r}, frameworks=[], capture_console=False, capture_env=False)
        client = mbx.Client({uri!r})
        with mbx.start_run(name="parent") as run:
            for k in range(4):
                run.log_metric("before_fork", k)
                pid = os.fork()
                if pid == 0:  # a worker: logs its own run, then exits normally (SystemExit runs through
                    with mbx.start_run(name=f"child{{k}}") as child:  # the parent's `with` in this process)
                        child.log_metric("work", k)
                    sys.exit(0)
                _, status = os.waitpid(pid, 0)
                assert os.WEXITSTATUS(status) == 0
            assert mbx.flush(30)
            print("while training:", client.run(run.id).status, flush=True)
            for k in range(10):
                run.log_metric("after_fork", k)
            raise RuntimeError("diverged")  # the parent fails: its run must say so, children or not
    """, child_env(tmp_path))
    assert result.returncode == 1 and "RuntimeError: diverged" in result.stderr
    assert "while training: running" in result.stdout  # four children exited normally: still running
    runs = {r.name: r for r in mbx.Client(uri).runs()}
    parent = runs["parent"]
    assert parent.status == "failed" and parent.failure.type == "RuntimeError" and parent.failure.message == "diverged"
    assert "diverged" in parent.failure.traceback
    assert len(parent.metrics("before_fork")) == 4 and len(parent.metrics("after_fork")) == 10
    assert {runs[f"child{k}"].status for k in range(4)} == {"finished"}
    assert all(runs[f"child{k}"].parent_run_id == parent.id for k in range(4))
    figures(children=4, parent_status_while_training="running", parent_final="failed", children_final="finished")


def test_eight_threads_with_automatic_steps_get_unique_steps(tmp_path, figures):
    uri = f"sqlite:///{tmp_path}/store/modelbox.db"
    mbx.autolog(backend=uri, frameworks=[], capture_console=False, capture_env=False)
    with mbx.start_run(name="threads") as run:
        barrier = threading.Barrier(8)

        def work() -> None:
            barrier.wait()
            for i in range(50_000):
                run.log_metric("shared", float(i))

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert mbx.flush(60)
    steps = [p.step for p in mbx.Client(uri).run(run.id).metrics("shared")]
    assert len(steps) == 400_000 and sorted(steps) == list(range(400_000))  # no step twice, none missing
    figures(threads=8, points=400_000, duplicate_steps=len(steps) - len(set(steps)))
