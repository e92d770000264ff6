"""Several stateless ``modelbox server`` replicas in front of one PostgreSQL store and one S3
bucket: clients balance over them and survive losing one, every record is stored exactly once,
watchers on any replica see changes made through every other, uploads stream into S3."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import psutil
import pytest

import modelbox_autolog as mbx
from modelbox_autolog._records import Artifact, Batch, RunStart, new_id
from modelbox_autolog.backends.grpc import GrpcBackend, GrpcStore
from modelbox_autolog.backends.postgres import PostgresStore
from modelbox_autolog.proto.modelbox.v1 import records_pb2 as rpb
from modelbox_autolog.proto.modelbox.v1 import service_pb2_grpc as sgrpc

pytestmark = pytest.mark.timeout(600)


def _uri(group) -> str:
    return "grpc://" + ",".join(f"127.0.0.1:{r.port}" for r in group)


def test_a_client_keeps_logging_while_a_replica_is_killed_exactly_once(replicas, pg_uri):
    a, b = replicas(2)
    mbx.autolog(backend=_uri([a, b]), experiment="failover", capture_console=False)
    total = 200_000
    with mbx.start_run(name="failover") as run:
        for step in range(total):
            run.log_metric("loss", float(step), step=step)
            if step == total // 4:
                assert mbx.flush(60)  # both replicas have taken batches by now
                a.kill(signal.SIGKILL)
    assert mbx.flush(120)
    store = PostgresStore(pg_uri)
    try:
        points = store.metrics(run.id, "loss")
        assert len(points) == total
        assert [p.step for p in points] == list(range(total))
        assert store.run(run.id).status == "finished"
    finally:
        store.close()


WRITER = """
import sys, modelbox_autolog as mbx
uri, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
mbx.autolog(backend=uri, experiment="writers", capture_console=False)
with mbx.start_run(name=name) as run:
    run.log_params({"writer": name})
    for step in range(count):
        run.log_metrics({"a": float(step), "b": -float(step)}, step=step)
    run.log_event("done", writer=name)
assert mbx.flush(120)
print(run.id)
"""


def test_four_writer_processes_against_two_replicas_exact_counts(replicas, pg_uri, tmp_path):
    group = replicas(2)
    count = 20_000
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "MODELBOX_JOURNAL_DIR": str(tmp_path / "journal")}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, _uri(group), f"w{i}", str(count)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for i in range(4)]
    run_ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        run_ids.append(out.strip().splitlines()[-1])
    store = PostgresStore(pg_uri)
    try:
        runs = store.runs(experiment="writers")
        assert sorted(r.id for r in runs) == sorted(run_ids) and {r.status for r in runs} == {"finished"}
        for run_id in run_ids:
            for key, sign in (("a", 1), ("b", -1)):
                points = store.metrics(run_id, key)
                assert len(points) == count and [p.value for p in points] == [sign * float(s) for s in range(count)]
            assert [e.name for e in store.events(run_id)] == ["done"]
    finally:
        store.close()


def test_a_watcher_on_one_replica_sees_a_model_finalized_through_another(replicas, tmp_path):
    a, b = replicas(2)
    (tmp_path / "model.pkl").write_bytes(b"model bytes")
    writer = GrpcBackend(b.uri)
    model_id = new_id()
    from modelbox_autolog._records import ModelFile, ModelRecord

    batch = Batch(new_id(), "w", [ModelRecord(model_id, None, "shared-model", "generic",
                                              [ModelFile("model.pkl", str(tmp_path / "model.pkl"))], time.time())])
    writer.write(batch)
    GrpcBackend(a.uri).write(batch)  # the same batch re-sent to the other replica (a failover) is stored once
    watcher = GrpcStore(a.uri)
    assert [m.version for m in watcher.models(name="shared-model")] == [1]
    start = watcher.last_change_seq()
    seen = []
    stop = threading.Event()

    def watch():
        for change in watcher.watch(since=start, timeout=60, stop=stop):
            seen.append(change)
            if change.object_type == "model" and change.payload.get("status") == "final":
                stop.set()

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(0.5)
    began = time.monotonic()
    writer.store().finalize_model(model_id)
    thread.join(60)
    assert any(c.object_id == model_id and c.payload.get("status") == "final" for c in seen)
    assert time.monotonic() - began < 5  # pushed by NOTIFY, not found by a slow poll
    # the file went through replica B into the bucket and reads back through replica A
    [file] = watcher.model(model_id).files
    assert b"".join(watcher.read_file(file.path_or_uri)) == b"model bytes"
    # or, asked for, a presigned URL that fetches it straight from the bucket
    url = mbx.Client(a.uri).download_url(file.path_or_uri, expires_s=120)
    assert url.startswith("http") and "Signature" in url
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.read() == b"model bytes"
    writer.close()
    watcher.close()


def _generated_upload(upload_id: str, size: int, piece: int = 256 << 10):
    """An upload of ``size`` generated bytes (no file on disk), with its sha256 at the end."""
    block = os.urandom(piece)
    digest = hashlib.sha256()
    yield rpb.UploadRequest(header=rpb.UploadHeader(upload_id=upload_id, size=size))
    left = size
    while left:
        chunk = block if left >= piece else block[:left]
        digest.update(chunk)
        left -= len(chunk)
        yield rpb.UploadRequest(chunk=chunk)
    yield rpb.UploadRequest(sha256=digest.hexdigest())
    _generated_upload.sha256 = digest.hexdigest()


def test_a_1_gb_upload_streams_through_a_replica_into_s3_with_bounded_memory(replicas, s3_env, bucket):
    import grpc

    [replica] = replicas(1)
    size = 1 << 30
    proc = psutil.Process(replica.proc.pid)
    baseline = proc.memory_info().rss
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    upload_id = new_id()
    channel = grpc.insecure_channel(f"127.0.0.1:{replica.port}")
    began = time.monotonic()
    try:
        reply = sgrpc.ModelBoxStub(channel).Upload(_generated_upload(upload_id, size), timeout=600)
        run_id, artifact_id = new_id(), new_id()
        request = rpb.WriteBatchRequest(batch_id=new_id(), run_starts=[rpb.RunStart(run_id=run_id, experiment="big", start_time=1.0)],
                                        artifacts=[rpb.Artifact(id=artifact_id, run_id=run_id, kind="file",
                                                                      file=rpb.FileRef(name="big.bin", upload_id=upload_id))])
        sgrpc.ModelBoxStub(channel).WriteBatch(request, timeout=600)
    finally:
        done.set()
        sampler.join()
        channel.close()
    seconds = time.monotonic() - began
    assert reply.bytes == size and reply.sha256 == _generated_upload.sha256
    store = GrpcStore(replica.uri)
    [artifact] = store.artifacts(run_id)
    assert artifact.bytes == size and artifact.sha256 == reply.sha256
    head = s3_env.client().head_object(Bucket=bucket, Key=f"team/runs/{run_id}/{artifact_id}/big.bin")
    assert head["ContentLength"] == size
    leftovers = s3_env.client().list_objects_v2(Bucket=bucket, Prefix="team/.uploads/").get("Contents", [])
    assert leftovers == []
    growth = (peak[0] - baseline) / (1 << 20)
    print(f"1 GB through one replica into S3: {size / (1 << 20) / seconds:.0f} MB/s, server RSS growth {growth:.0f} MB")
    assert growth < 64, f"server RSS grew by {growth:.0f} MB during a 1 GB upload"
    store.close()


def test_metrics_show_database_pool_and_s3_requests(replicas, tmp_path):
    from .components import free_port

    port = free_port()
    [replica] = replicas(1, "--metrics-port", str(port))
    (tmp_path / "a.bin").write_bytes(os.urandom(1000))
    backend = GrpcBackend(replica.uri)
    run_id = new_id()
    backend.write(Batch(new_id(), "w", [RunStart(run_id, "metrics", None, time.time()),
                                       Artifact(new_id(), run_id, "a.bin", str(tmp_path / "a.bin"))]))
    backend.close()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    assert 'modelbox_db_operation_seconds_count{operation="write_batch",outcome="ok"}' in text
    assert "modelbox_db_pool_pool_size" in text and "modelbox_db_pool_requests_waiting" in text
    assert 'modelbox_artifact_request_seconds_count{operation="put_object",outcome="ok",store="s3"}' in text
    assert 'modelbox_artifact_request_seconds_count{operation="copy_object",outcome="ok",store="s3"}' in text
    assert "modelbox_store_up 1.0" in text


def test_server_address_lists():
    from modelbox_autolog.backends import BackendError
    from modelbox_autolog.backends.grpc import channel_target

    target, tls, options = channel_target("grpc://127.0.0.1:5001,127.0.0.1:5002")
    assert target == "ipv4:127.0.0.1:5001,127.0.0.1:5002" and not tls
    assert ("grpc.lb_policy_name", "round_robin") in options
    assert channel_target("grpcs://[::1]:7,[::1]:8")[:2] == ("ipv6:[::1]:7,[::1]:8", True)
    assert channel_target("grpc://one.example:9") == ("one.example:9", False, [])
    for bad in ("grpc://a:1,", "grpc://a:1,b:x", "grpc://a:1/path"):
        with pytest.raises(BackendError):
            channel_target(bad)


def test_a_replica_serves_the_ui_and_http_api_over_postgres_and_s3(replicas, tmp_path):
    httpx = pytest.importorskip("httpx")
    from .components import free_port

    http_port = free_port()
    [replica] = replicas(1, "--http-port", str(http_port))
    mbx.autolog(backend=replica.uri, experiment="ui-team", capture_console=False)
    (tmp_path / "notes.txt").write_text("hello from the bucket")
    with mbx.start_run(name="shown") as run:
        run.log_params({"lr": 0.3})
        run.log_metric("acc", 0.75, step=1)
        run.log_artifact(str(tmp_path / "notes.txt"))
    assert mbx.flush(30)
    with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=30) as http:
        health = http.get("/api/v1/health").json()
        assert health["ok"] and health["store"].startswith("postgresql://modelbox@") and "s3cret" not in health["store"]
        body = http.get("/api/v1/runs", params={"experiment": "ui-team", "where": "params.lr > 0.2", "count": 1}).json()
        assert [r["id"] for r in body["runs"]] == [run.id] and body["total"] == 1
        [artifact] = http.get(f"/api/v1/runs/{run.id}/artifacts").json()["artifacts"]
        assert http.get(artifact["content_url"]).text == "hello from the bucket"
