"""SIGKILL of a logging process (the OOM killer, a preempted job): what was logged more than
WINDOW_S before the kill is kept, exactly once, and the run reads as killed."""

from __future__ import annotations

import array
import mmap
import os
import signal
import subprocess
import sys
import time

import pytest

import modelbox_autolog as mbx
from modelbox_autolog.backends import NotFound

from .conftest import WINDOW_S, child_env, run_script, script, wait_for

pytestmark = pytest.mark.timeout(240)

LOGGER = """
    import mmap, os, time
    import modelbox_autolog as mbx
    mbx.autolog(backend={uri!r}, frameworks=[], experiment="kill", capture_console=False, capture_env=False)
    with open({times!r}, "r+b") as handle:
        logged_at = memoryview(mmap.mmap(handle.fileno(), 0)).cast("d")  # when each step was logged, for the test
    with mbx.start_run(name="victim") as run:
        print(run.id, flush=True)
        i = 0
        while True:  # as fast as a tight loop can log: faster than any backend stores
            logged_at[i] = time.time()
            run.log_metric("loss", float(i), step=i)
            i += 1
"""
CAPACITY = 16_000_000  # steps the times file holds (128 MB, sparse): far more than a few seconds of logging


def _start_logger(tmp_path, uri: str, env: dict[str, str]) -> tuple[subprocess.Popen, str, str]:
    times = tmp_path / "logged_at"
    with open(times, "wb") as handle:
        handle.truncate(CAPACITY * 8)
    proc = subprocess.Popen(script(LOGGER.format(uri=uri, times=str(times))), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    client = mbx.Client(uri)
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, proc.stderr.read()
        # Killed once the run is stored (on a loaded machine opening the store may take a while).
        wait_for(lambda: _stored(client, run_id), 60, "the run to be stored")
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    finally:
        client.close()
    return proc, run_id, str(times)


def _stored(client: mbx.Client, run_id: str) -> bool:
    try:
        client.run(run_id)
    except NotFound:
        return False
    return True


def _kill_after(proc: subprocess.Popen, times: str, seconds: float) -> tuple[float, array.array]:
    """SIGKILL after ``seconds``; returns when, and when each step was logged."""
    time.sleep(seconds)
    killed_at = time.time()
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)  # reaped, and its pipes closed
    with open(times, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        view = memoryview(mapped).cast("d")
        low, high = 0, len(view)  # steps logged: the times written, a prefix of the file
        while low < high:
            middle = (low + high) // 2
            low, high = (middle + 1, high) if view[middle] != 0.0 else (low, middle)
        logged_at = array.array("d", view[:low])
        view.release()
    return killed_at, logged_at


def _check_points(points, killed_at: float, logged_at: array.array) -> dict:
    """What a SIGKILL lost is at most what was logged in the last WINDOW_S before it: measured from
    when the first lost step was logged, so a logger the loaded machine did not run for a while
    (logging nothing then, losing nothing) does not count as a loss."""
    steps = [p.step for p in points]
    logged = len(logged_at)
    assert steps == list(range(len(steps))), "a gap or a duplicate: every point kept must be kept once, in order"
    assert len(steps) <= logged
    # The step after the last one kept is the first lost (its time was written just before it was logged).
    window = killed_at - logged_at[len(steps)] if len(steps) < logged else 0.0
    assert window <= WINDOW_S, (f"points logged {window:.3f}s before the kill were lost (documented: at most {WINDOW_S}s); "
                                f"the last kept was logged {killed_at - logged_at[len(steps) - 1]:.3f}s before it")
    return {"logged_before_kill": logged, "kept": len(steps), "lost": logged - len(steps), "window_s": round(window, 3)}


def test_sigkill_on_sqlite_keeps_all_but_the_last_moment_and_the_run_reads_killed(tmp_path, figures):
    uri = f"sqlite:///{tmp_path}/store/modelbox.db"
    env = child_env(tmp_path)
    proc, run_id, times = _start_logger(tmp_path, uri, env)
    killed_at, logged_at = _kill_after(proc, times, 2.0)

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
    found = _check_points(points, killed_at, logged_at)
    assert client.run(run_id).status == "killed"
    assert not [f for _r, _d, files in os.walk(journal) for f in files if f.endswith(".mbj")]  # delivered, deleted
    figures(backend="sqlite", stored_at_kill=stored_at_kill, replayed_by_next_process=int(result.stdout.split()[-1]),
            replay_s=round(time.monotonic() - started, 2), **found)


def test_sigkill_on_grpc_keeps_the_backlog_in_the_journal_and_sync_delivers_it_once(tmp_path, server_factory, figures):
    server = server_factory().start()
    env = child_env(tmp_path)
    proc, run_id, times = _start_logger(tmp_path, server.uri, env)
    killed_at, logged_at = _kill_after(proc, times, 1.5)

    client = mbx.Client(server.uri)
    # The server runs on this machine: it sees the pid is gone (readers look every REAP_EVERY_S, 2 s).
    wait_for(lambda: client.run(run_id).status == "killed", 10, "the server to see the run killed")
    stored_at_kill = len(client.run(run_id).metrics("loss"))
    started = time.monotonic()
    sync = subprocess.run([sys.executable, "-m", "modelbox_autolog", "sync", str(tmp_path / "journal")],
                          env=env, capture_output=True, text=True, timeout=180)
    assert sync.returncode == 0, sync.stderr + sync.stdout
    assert "new" in sync.stdout
    found = _check_points(client.run(run_id).metrics("loss"), killed_at, logged_at)
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
