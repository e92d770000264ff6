"""SIGKILL of a logging process (the OOM killer, a preempted job): what was logged more than
WINDOW_S before the kill is kept, exactly once, and the run reads as killed."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time

import pytest

import modelbox_autolog as mbx

from .conftest import WINDOW_S, child_env, run_script, script, wait_for

pytestmark = pytest.mark.timeout(240)

LOGGER = """
    import os, struct, sys, time
    import modelbox_autolog as mbx
    mbx.autolog(backend={uri!r}, frameworks=[], experiment="kill", capture_console=False, capture_env=False)
    counter = os.open({counter!r}, os.O_RDWR)
    with mbx.start_run(name="victim") as run:
        print(run.id, flush=True)
        i = 0
        while True:  # as fast as a tight loop can log: faster than any backend stores
            for _ in range(1000):
                run.log_metric("loss", float(i), step=i)
                i += 1
            os.pwrite(counter, struct.pack("<q", i), 0)  # how many were logged, for the test to read
"""


def _start_logger(tmp_path, uri: str, env: dict[str, str]) -> tuple[subprocess.Popen, str, str]:
    counter = tmp_path / "counter"
    counter.write_bytes(struct.pack("<q", 0))
    proc = subprocess.Popen(script(LOGGER.format(uri=uri, counter=str(counter))), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    run_id = proc.stdout.readline().strip()
    assert run_id, proc.stderr.read()
    return proc, run_id, str(counter)


def _kill_after(proc: subprocess.Popen, counter: str, seconds: float) -> tuple[float, int]:
    time.sleep(seconds)
    killed_at = time.time()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    with open(counter, "rb") as handle:
        logged = struct.unpack("<q", handle.read(8))[0]
    return killed_at, logged


def _check_points(points, killed_at: float, logged: int) -> dict:
    steps = [p.step for p in points]
    assert steps == list(range(len(steps))), "a gap or a duplicate: every point kept must be kept once, in order"
    assert len(steps) <= logged + 1000  # (the counter is written every 1000 points)
    last = max(p.timestamp for p in points)
    window = killed_at - last
    assert window <= WINDOW_S, f"the last {window:.3f}s before the kill were lost (documented: at most {WINDOW_S}s)"
    return {"logged_before_kill": logged, "kept": len(steps), "lost": max(0, logged - len(steps)),
            "window_s": round(window, 3)}


def test_sigkill_on_sqlite_keeps_all_but_the_last_moment_and_the_run_reads_killed(tmp_path, figures):
    uri = f"sqlite:///{tmp_path}/store/modelbox.db"
    env = child_env(tmp_path)
    proc, run_id, counter = _start_logger(tmp_path, uri, env)
    killed_at, logged = _kill_after(proc, counter, 3.0)

    client = mbx.Client(uri)
    run = client.run(run_id)
    assert run.status == "killed"  # same machine: its pid is gone, seen at once
    assert run.failure.type == "ProcessLost" and str(proc.pid) in run.failure.message
    stored_at_kill = len(run.metrics("loss"))
    journal = tmp_path / "journal"
    assert any(name.endswith(".mbj") for _root, _dirs, files in os.walk(journal) for name in files)

    # The next process writing to that store delivers what the dead one left, before its own records.
    started = time.monotonic()
    result = run_script(f"""
        import modelbox_autolog as mbx
        mbx.autolog(backend={uri!r}, frameworks=[], capture_console=False, capture_env=False)
        with mbx.start_run(name="next"):
            pass
        assert mbx.flush(60)
        print(mbx.stats()[{uri!r}]["replayed"])
    """, env)
    assert result.returncode == 0, result.stderr
    points = client.run(run_id).metrics("loss")
    found = _check_points(points, killed_at, logged)
    assert client.run(run_id).status == "killed"
    assert not [f for _r, _d, files in os.walk(journal) for f in files if f.endswith(".mbj")]  # delivered, deleted
    figures(backend="sqlite", stored_at_kill=stored_at_kill, replayed_by_next_process=int(result.stdout.split()[-1]),
            replay_s=round(time.monotonic() - started, 2), **found)


def test_sigkill_on_grpc_keeps_the_backlog_in_the_journal_and_sync_delivers_it_once(tmp_path, server_factory, figures):
    server = server_factory().start()
    env = child_env(tmp_path)
    proc, run_id, counter = _start_logger(tmp_path, server.uri, env)
    killed_at, logged = _kill_after(proc, counter, 3.0)

    client = mbx.Client(server.uri)
    assert client.run(run_id).status == "killed"  # the server runs on this machine: it sees the pid is gone
    stored_at_kill = len(client.run(run_id).metrics("loss"))
    started = time.monotonic()
    sync = subprocess.run([sys.executable, "-m", "modelbox_autolog", "sync", str(tmp_path / "journal")],
                          env=env, capture_output=True, text=True, timeout=180)
    assert sync.returncode == 0, sync.stderr + sync.stdout
    assert "new" in sync.stdout
    found = _check_points(client.run(run_id).metrics("loss"), killed_at, logged)
    again = subprocess.run([sys.executable, "-m", "modelbox_autolog", "sync", str(tmp_path / "journal")],
                           env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "0 batches" in again.stdout  # nothing left: a second sync is a no-op
    assert len(client.run(run_id).metrics("loss")) == found["kept"]
    figures(backend="grpc", stored_at_kill=stored_at_kill, journaled_at_kill=found["kept"] - stored_at_kill,
            sync_s=round(time.monotonic() - started, 2), **found)


def test_a_run_of_another_machine_reads_killed_when_its_lease_runs_out(tmp_path, server_factory, figures):
    """The writer runs under another host name (a UTS namespace): the server cannot see its pid,
    only that its heartbeats stop; the run reads killed within the lease (3 heartbeats)."""
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/unshare"):
        pytest.skip("needs root and unshare(1) to run the writer under another host name")
    server = server_factory().start()
    env = child_env(tmp_path, MODELBOX_HEARTBEAT_S="0.5")
    code = f"""
        import socket, time
        import modelbox_autolog as mbx
        mbx.autolog(backend={server.uri!r}, frameworks=[], capture_console=False, capture_env=False)
        run = mbx.start_run(name="remote")
        run.log_metric("x", 1.0)
        assert mbx.flush(30)
        print(run.id, socket.gethostname(), flush=True)
        time.sleep(600)
    """
    proc = subprocess.Popen(["unshare", "--uts", "sh", "-c", 'hostname elsewhere-host && exec "$0" "$@"', *script(code)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_id, host = proc.stdout.readline().split()
        assert host == "elsewhere-host"
        client = mbx.Client(server.uri)
        time.sleep(2.5)  # five heartbeats: alive all along
        assert client.run(run_id).status == "running"
        proc.kill()
        proc.wait(10)
        killed_at = time.monotonic()
        wait_for(lambda: client.run(run_id).status == "killed", 15, "the lease to run out")
        detected_s = time.monotonic() - killed_at
    finally:
        if proc.poll() is None:
            proc.kill()
    failure = client.run(run_id).failure
    assert failure.type == "ProcessLost" and "no sign of life" in failure.message
    assert detected_s <= 1.5 + 2 * 2.0 + 1.0  # the lease (3 x 0.5 s) plus the readers' check interval, with slack
    figures(lease_s=1.5, detected_after_kill_s=round(detected_s, 2))
