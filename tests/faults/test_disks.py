"""Disks that refuse: a store on a full disk, a journal on a full disk, a read-only store, a store
with damaged pages. Records are kept in the journal (or counted as dropped when even that is
impossible), said once, and delivered exactly once when the disk is fixed."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import subprocess
import sys
import time

import pytest

import modelbox_autolog as mbx

from .conftest import child_env, run_script, script, wait_for

pytestmark = pytest.mark.timeout(240)

KEPT = re.compile(r"(\d+) record\(s\) for \S+ are kept in the journal (\S+);")
DROPPED = re.compile(r"(\d+) record\(s\) were dropped: (.*)")


def _ours(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("modelbox-autolog:")]


def _kept(stderr: str) -> tuple[int, str | None]:
    found = KEPT.search(stderr)
    return (int(found.group(1)), found.group(2)) if found else (0, None)


def _dropped(stderr: str) -> int:
    found = DROPPED.search(stderr)
    return int(found.group(1)) if found else 0


def _journaled_points(folder: str) -> int:
    from modelbox_autolog._codec import unpack_batch
    from modelbox_autolog._journal import read_frames, segment_files

    points = 0
    for path in segment_files(folder):
        fd = os.open(path, os.O_RDONLY)
        try:
            for kind, _offset, payload in read_frames(fd, path):
                if kind != b"A":
                    points += sum(type(r) is tuple for r in unpack_batch(payload, kind == b"M").records)
        finally:
            os.close(fd)
    return points


def _sync(journal: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "modelbox_autolog", "sync", journal], env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr + done.stdout
    return done


LOG_POINTS = """
    import modelbox_autolog as mbx
    mbx.autolog(backend={uri!r}, frameworks=[], capture_console=False, capture_env=False)
    with mbx.start_run(name="full") as run:
        print(run.id, flush=True)
        for i in range({n}):
            run.log_metric("loss", 0.5, step=i)
"""


def test_store_on_a_full_disk_keeps_records_in_the_journal_until_there_is_room(tmp_path, tmpfs, figures):
    disk = tmpfs("2m")
    uri = f"sqlite:///{disk.path}/modelbox.db"
    env = child_env(tmp_path)
    n = 200_000  # ~6 MB of points: three times what the disk holds
    result = run_script(LOG_POINTS.format(uri=uri, n=n), env)
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip()
    kept, journal = _kept(result.stderr)
    assert journal is not None and _dropped(result.stderr) == 0, result.stderr
    assert len(_ours(result.stderr)) == 2  # "disk full, kept in the journal" once, then the exit line
    stored = len(mbx.Client(uri).run(run_id).metrics("loss"))
    assert stored + 1 + kept == n + 2  # RunStart stored; every other record either stored or journaled

    disk.remount("size=64m")  # room again
    _sync(journal, env)
    run = mbx.Client(uri).run(run_id)
    assert [p.step for p in run.metrics("loss")] == list(range(n)) and run.status == "finished"
    figures(logged=n + 2, stored_at_exit=stored + 1, journaled=kept, dropped=0, stored_after_sync=n + 2)


def test_journal_on_a_full_disk_with_a_working_store_loses_nothing(tmp_path, tmpfs, figures):
    disk = tmpfs("64k")
    uri = f"sqlite:///{tmp_path}/store/modelbox.db"
    env = child_env(tmp_path, MODELBOX_JOURNAL_DIR=disk.path)
    n = 100_000
    result = run_script(LOG_POINTS.format(uri=uri, n=n), env)
    assert result.returncode == 0, result.stderr
    run = mbx.Client(uri).run(result.stdout.strip())
    assert [p.step for p in run.metrics("loss")] == list(range(n)) and run.status == "finished"
    assert any("journal" in line and "refused" in line for line in _ours(result.stderr))
    assert _dropped(result.stderr) == 0
    figures(logged=n + 2, stored=n + 2, journaled=0, dropped=0)


def test_journal_on_a_full_disk_and_no_backend_counts_what_is_lost(tmp_path, tmpfs, server_factory, figures):
    disk = tmpfs("256k")
    server = server_factory()  # never started: nothing answers
    env = child_env(tmp_path, MODELBOX_JOURNAL_DIR=disk.path, MODELBOX_SHUTDOWN_TIMEOUT="1")
    n = 100_000
    result = run_script(LOG_POINTS.format(uri=server.uri, n=n), env)
    assert result.returncode == 0, result.stderr
    kept, journal = _kept(result.stderr)
    dropped = _dropped(result.stderr)
    assert kept + dropped == n + 2, result.stderr  # every record: kept, or counted with its reason
    assert dropped > 0 and "journal" in DROPPED.search(result.stderr).group(2)
    # One line per cause: the journal full, the exit line and, if the sender got to try the server
    # before the exit budget ran out (it may not, on a loaded machine), the server down.
    ours = _ours(result.stderr)
    assert sum("refused records" in line for line in ours) == 1 and sum("were dropped" in line for line in ours) == 1
    down = [line for line in ours if "refused records" not in line and "were dropped" not in line]
    assert len(down) <= 1 and all(f"backend {server.uri}" in line for line in down), result.stderr
    journaled_points = _journaled_points(journal)
    server.start()
    _sync(journal, env)
    conn = sqlite3.connect(server.db)
    stored = conn.execute("SELECT coalesce(sum(count), 0) FROM metric_chunks").fetchone()[0]
    conn.close()
    assert stored == journaled_points > 0  # what was journaled arrives, once
    figures(logged=n + 2, journaled=kept, dropped=dropped, dropped_reason="neither the backend nor the journal could take them",
            stored_after_sync=stored)


def _without_root_powers(command: list[str]) -> list[str]:
    """Run as root, but without the capability that ignores file permissions (like any user)."""
    if os.geteuid() != 0:
        return command
    if not os.path.exists("/usr/bin/setpriv"):
        pytest.skip("needs setpriv(1) to drop CAP_DAC_OVERRIDE (root writes read-only files otherwise)")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]


def test_read_only_store_keeps_records_in_the_journal_with_one_message(tmp_path, figures):
    uri = f"sqlite:///{tmp_path}/store/modelbox.db"
    env = child_env(tmp_path)
    first = run_script(LOG_POINTS.format(uri=uri, n=10), env)  # the store exists, with one run
    assert first.returncode == 0, first.stderr
    database, artifacts = tmp_path / "store" / "modelbox.db", tmp_path / "store" / "artifacts"
    artifacts.mkdir(exist_ok=True)
    (tmp_path / "plot.txt").write_text("epoch 0")
    os.chmod(database, 0o444)  # the store file is read-only, its artifacts folder too (permission denied)
    os.chmod(artifacts, 0o555)
    try:
        proc = subprocess.run(_without_root_powers(script(f"""
            import modelbox_autolog as mbx
            mbx.autolog(backend={uri!r}, frameworks=[], capture_console=False, capture_env=False)
            with mbx.start_run(name="after") as run:
                print(run.id, flush=True)
                for i in range(5000):
                    run.log_metric("loss", 0.5, step=i)
                    if i % 1000 == 0:
                        run.log_params({{f"p{{i}}": i}})
                        run.log_event("tick", i=i)
                run.log_artifact({str(tmp_path / "plot.txt")!r})
        """)), env=env, capture_output=True, text=True, timeout=120)
    finally:
        os.chmod(database, 0o644)
        os.chmod(artifacts, 0o755)
    assert proc.returncode == 0, proc.stderr
    run_id, err = proc.stdout.strip(), proc.stderr
    kept, journal = _kept(err)
    assert kept == 5000 + 5 + 5 + 1 + 2 and _dropped(err) == 0, err
    ours = _ours(err)
    assert len(ours) == 2 and ("read-only" in ours[0] or "Permission denied" in ours[0]), err  # one warning, one exit line
    assert len(err) < 2000

    _sync(journal, env)  # permissions fixed: the journal goes in, once
    run = mbx.Client(uri).run(run_id)
    assert len(run.metrics("loss")) == 5000 and len(run.params) == 5 and run.status == "finished"
    assert [open(a.path_or_uri).read() for a in run.artifacts()] == ["epoch 0"]
    figures(logged=kept, stored_at_exit=0, journaled=kept, dropped=0, stderr_lines=len(err.splitlines()),
            stored_after_fix=kept)


def test_a_store_with_damaged_pages_is_not_written_to(tmp_path, figures):
    uri = f"sqlite:///{tmp_path}/store/modelbox.db"
    path = str(tmp_path / "store" / "modelbox.db")
    env = child_env(tmp_path)
    first = run_script(LOG_POINTS.format(uri=uri, n=300_000), env)  # a store of some size
    assert first.returncode == 0, first.stderr
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:  # damage a page in the middle (a b-tree page of the points)
        handle.seek((size // 4096 // 2) * 4096)
        handle.write(os.urandom(4096))
    with open(path, "rb") as handle:
        before = hashlib.sha256(handle.read()).hexdigest()

    result = run_script(LOG_POINTS.format(uri=uri, n=1000), env)
    assert result.returncode == 0, result.stderr
    kept, journal = _kept(result.stderr)
    assert kept == 1002 and _dropped(result.stderr) == 0
    ours = _ours(result.stderr)
    assert len(ours) == 2 and "damaged" in ours[0] and ".recover" in ours[0], result.stderr
    with open(path, "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == before  # not one byte written into it
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA quick_check").fetchone()[0] != "ok"
    conn.close()
    figures(logged=1002, stored=0, journaled=kept, dropped=0, detected="PRAGMA quick_check before the first write")


def test_a_journal_left_while_the_store_was_read_only_is_sent_by_the_next_process(tmp_path):
    """The read-only case, replayed by the next process instead of sync (in order, once)."""
    uri = f"sqlite:///{tmp_path}/store/modelbox.db"
    database = tmp_path / "store" / "modelbox.db"
    env = child_env(tmp_path)
    assert run_script(LOG_POINTS.format(uri=uri, n=1), env).returncode == 0
    os.chmod(database, 0o444)
    try:
        result = subprocess.run(_without_root_powers(script(LOG_POINTS.format(uri=uri, n=20_000))), env=env,
                                capture_output=True, text=True, timeout=120)
    finally:
        os.chmod(database, 0o644)
    assert result.returncode == 0 and _kept(result.stderr)[0] == 20_002, result.stderr
    again = run_script(f"""
        import modelbox_autolog as mbx
        mbx.autolog(backend={uri!r}, frameworks=[], capture_console=False, capture_env=False)
        assert mbx.flush(60)
    """, env)
    assert again.returncode == 0, again.stderr
    client = mbx.Client(uri)
    wait_for(lambda: len(client.runs()) == 2, 30, "the replayed run")
    replayed = client.run(result.stdout.strip())
    assert [p.step for p in replayed.metrics("loss")] == list(range(20_000)) and replayed.status == "finished"
    assert time.time() - replayed.end_time < 600
