"""The team server under faults: SIGKILL and restart while ten processes write to it; a wrong token
that is fixed later. Every record arrives exactly once; nothing is dropped."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

import modelbox_autolog as mbx

from .conftest import child_env, script

pytestmark = pytest.mark.timeout(300)

WRITER = """
    import sys, time
    import modelbox_autolog as mbx
    from modelbox_autolog import _exporter
    mbx.autolog(backend={uri!r}, frameworks=[], capture_console=False, capture_env=False)
    with mbx.start_run(name="writer-{k}") as run:
        print(run.id, flush=True)
        for i in range({n}):
            run.log_metric("loss", 0.5, step=i)
            if i % 500 == 499:
                time.sleep(0.02)  # a training step's worth of time
    ok = mbx.flush(120)
    exporter = _exporter.all_exporters()[0]
    print(ok, exporter.stats["dropped"], exporter.stats["journaled"], flush=True)
"""


def test_server_sigkill_and_restart_under_ten_writers_keeps_every_point_once(tmp_path, server_factory, figures):
    server = server_factory().start()
    n = 30_000
    env = child_env(tmp_path)
    writers = [subprocess.Popen(script(WRITER.format(uri=server.uri, k=k, n=n)), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for k in range(10)]
    run_ids = [w.stdout.readline().strip() for w in writers]
    assert all(run_ids), [w.stderr.read() for w in writers]
    time.sleep(1.0)
    server.kill(signal.SIGKILL)  # mid-run: batches in flight, uploads half done
    killed_at = time.monotonic()
    time.sleep(1.5)
    server.start()  # same port, same store
    outputs = [w.communicate(timeout=240) for w in writers]
    assert [w.returncode for w in writers] == [0] * 10, [err for _out, err in outputs]
    journaled = 0
    for out, err in outputs:
        ok, dropped, kept = out.split()[-3:]
        assert ok == "True" and dropped == "0", err
        journaled += int(kept)
    client = mbx.Client(server.uri)
    for run_id in run_ids:
        run = client.run(run_id)
        assert [p.step for p in run.metrics("loss")] == list(range(n)) and run.status == "finished"
    figures(writers=10, points_each=n, logged=10 * (n + 2), stored=10 * (n + 2), journaled_while_down=journaled, dropped=0,
            server_down_s=round(time.monotonic() - killed_at, 1))


def test_a_wrong_token_keeps_records_in_the_journal_until_sync_with_the_right_one(tmp_path, server_factory, figures):
    server = server_factory("--token", "right-token").start()
    env = child_env(tmp_path, MODELBOX_TOKEN="wrong-token")
    proc = subprocess.run(script(f"""
        import modelbox_autolog as mbx
        mbx.autolog(backend={server.uri!r}, frameworks=[], capture_console=False, capture_env=False)
        with mbx.start_run(name="secret") as run:
            print(run.id, flush=True)
            for i in range(10_000):
                run.log_metric("loss", 0.5, step=i)
    """), env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    ours = [line for line in proc.stderr.splitlines() if line.startswith("modelbox-autolog:")]
    assert len(ours) == 2, proc.stderr  # one message about the token (how to fix it), one exit line
    assert "MODELBOX_TOKEN" in ours[0] and "modelbox sync" in ours[0]
    assert "10002 record(s)" in ours[1] and "dropped" not in ours[1]
    journal = ours[1].split(" are kept in the journal ")[1].split(";")[0]

    wrong = subprocess.run([sys.executable, "-m", "modelbox_autolog", "sync", journal], env=env, capture_output=True,
                           text=True, timeout=60)
    assert wrong.returncode == 3 and "MODELBOX_TOKEN" in wrong.stdout  # still wrong: nothing lost, nothing sent
    right = subprocess.run([sys.executable, "-m", "modelbox_autolog", "sync", journal],
                           env={**env, "MODELBOX_TOKEN": "right-token"}, capture_output=True, text=True, timeout=120)
    assert right.returncode == 0, right.stderr + right.stdout
    import os

    os.environ["MODELBOX_TOKEN"] = "right-token"
    try:
        run = mbx.Client(server.uri).run(proc.stdout.strip())
        assert [p.step for p in run.metrics("loss")] == list(range(10_000)) and run.status == "finished"
    finally:
        del os.environ["MODELBOX_TOKEN"]
    figures(logged=10_002, dropped=0, journaled=10_002, messages=len(ours), stored_after_sync=10_002)
