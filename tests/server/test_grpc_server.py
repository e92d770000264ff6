"""The gRPC transport against a real server process: round trip, crash recovery, security, limits."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import grpc
import psutil
import pytest

import modelbox_autolog as mbx
from modelbox_autolog._records import Artifact, Batch, Event, Metric, ModelFile, ModelRecord, RunStart, new_id
from modelbox_autolog.backends import BackendError, ImmutableModel
from modelbox_autolog.backends.grpc import GrpcBackend, GrpcStore
from modelbox_autolog.proto.modelbox.v1 import records_pb2 as rpb
from modelbox_autolog.proto.modelbox.v1 import service_pb2 as spb
from modelbox_autolog.proto.modelbox.v1 import service_pb2_grpc as sgrpc

from .conftest import free_port

pytestmark = pytest.mark.timeout(180)


def _stub(server, token: str | None = None):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    return channel, sgrpc.ModelBoxStub(channel), metadata


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()


def _write_file(path, data: bytes) -> str:
    with open(path, "wb") as handle:
        handle.write(data)
    return str(path)


# ---------------------------------------------------------------------- round trip
def test_every_record_type_round_trips(server, tmp_path, capsys):
    mbx.autolog(backend=server.uri, experiment="remote", capture_console=False)
    artifact = _write_file(tmp_path / "confusion.csv", b"a,b\n1,2\n")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    _write_file(model_dir / "weights.bin", os.urandom(3000))
    _write_file(model_dir / "config.json", b'{"layers": 2}')
    with mbx.start_run(name="baseline", tags={"team": "vision"}) as run:
        run.log_params({"lr": 1e-3, "optimizer": {"name": "adam", "betas": [0.9, 0.99]}, "note": object()})
        for step in range(50):
            run.log_metric("loss", 1.0 / (step + 1), step=step, epoch=step // 10)
        run.log_metrics({"acc": 0.9, "nan": float("nan")}, step=50)
        with run.event("data_loading", epoch=2):
            pass
        run.log_event("checkpoint_saved", path="ckpt.pt", bytes=123)
        run.log_artifact(artifact, name="tables/confusion.csv")
        model = run.log_model(str(model_dir), name="churn-clf", framework="generic", metadata={"auc": 0.91},
                              labels={"env": "staging"}, datasets=["s3://bucket/train.parquet"])
        run.log_input("s3://bucket/train.parquet", kind="dataset", rows=10)
        run.set_progress(0.5)
        run_id = run.id
    assert mbx.flush(30)

    client = mbx.Client(server.uri)
    r = client.run(run_id)
    assert (r.name, r.status, r.experiment, r.progress) == ("baseline", "finished", "remote", 0.5)
    assert r.tags["team"] == "vision"
    assert r.params["lr"] == 1e-3 and r.params["optimizer.name"] == "adam" and r.params["optimizer.betas"] == [0.9, 0.99]
    assert "object" in r.params["note"]
    assert sorted(r.metric_keys()) == ["acc", "loss", "nan"]
    loss = r.metrics("loss")
    assert [p.step for p in loss] == list(range(50)) and loss[3].value == 0.25 and loss[25].epoch == 2
    assert r.metrics("acc")[0].epoch is None
    assert r.metrics("nan")[0].value != r.metrics("nan")[0].value
    assert [e.name for e in r.events()] == ["data_loading", "checkpoint_saved"]
    assert r.events("data_loading")[0].duration_s is not None
    assert r.events("checkpoint_saved")[0].attrs["bytes"] == 123
    [art] = r.artifacts()
    assert art.name == "tables/confusion.csv" and art.bytes == 8
    assert art.sha256 == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert client.download_artifact(run_id, "tables/confusion.csv", tmp_path / "dl").endswith("confusion.csv")
    assert r.inputs()[0].ref == "s3://bucket/train.parquet" and r.inputs()[0].attrs["rows"] == 10
    [m] = r.models()
    assert m.id == model.id and m.version == 1 and m.metadata == {"auc": 0.91} and m.datasets == ["s3://bucket/train.parquet"]
    assert m.url == f"{server.uri}#model={m.id}"
    assert sorted(f.name for f in m.files) == ["config.json", "weights.bin"]
    folder = client.download_model(m.url, tmp_path / "models")
    assert client.download_url(m.files[0].path_or_uri) is None  # a local artifacts folder cannot presign
    assert open(os.path.join(folder, "weights.bin"), "rb").read() == open(model_dir / "weights.bin", "rb").read()
    assert client.update_model(m.id, labels={"env": "prod"}).labels == {"env": "prod"}
    assert client.finalize_model(m.id).status == "final"
    with pytest.raises(ImmutableModel):
        client.update_model(m.id, metadata={"x": 1})
    assert [e.name for e in client.experiments()] == ["remote"]
    assert [x.id for x in client.models(name="churn-clf", labels={"env": "prod"})] == [m.id]
    kinds = {(c.kind, c.object_type) for c in client.store.changes(0)}
    assert list(client.watch(since=0, timeout=1.0, poll_interval=0.1)) == client.store.changes(0)
    assert {("created", "run"), ("created", "model"), ("appended", "metrics"), ("updated", "model")} <= kinds
    with pytest.raises(KeyError):
        client.run("0" * 32)

    # The CLI reads a server exactly as it reads a SQLite store.
    from modelbox_autolog.cli import main

    capsys.readouterr()
    assert main(["--backend", server.uri, "show", run_id[:8], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["name"] == "baseline" and len(shown["metrics"]["loss"]) == 50
    assert main(["--backend", server.uri, "models", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == m.id
    assert main(["--backend", server.uri, "download", m.url, str(tmp_path / "cli")]) == 0
    assert main(["--backend", server.uri, "show", "ffffffffff"]) == 2


def test_a_batch_resent_after_a_lost_answer_is_a_duplicate_not_an_error(server, tmp_path):
    """The first delivery claimed the upload; the same request again (its answer was lost, or
    it went to another replica after a failover) must be recognised, not refused."""
    from modelbox_autolog.backends.grpc import _upload_messages

    channel, stub, _ = _stub(server)
    upload_id = new_id()
    with open(_write_file(tmp_path / "a.bin", b"payload"), "rb") as handle:
        stub.Upload(_upload_messages(handle, upload_id, 7), timeout=10)
    run_id = new_id()
    request = rpb.WriteBatchRequest(
        batch_id=new_id(), run_starts=[rpb.RunStart(run_id=run_id, experiment="lost", start_time=1.0)],
        artifacts=[rpb.Artifact(id=new_id(), run_id=run_id, kind="file", file=rpb.FileRef(name="a.bin", upload_id=upload_id))],
    )
    assert stub.WriteBatch(request, timeout=10).duplicate is False
    again = stub.WriteBatch(request, timeout=10)
    assert again.duplicate is True and again.records == 2
    assert [a.bytes for a in GrpcStore(server.uri).artifacts(run_id)] == [7]
    channel.close()


def test_a_resent_batch_stores_nothing_twice(server, tmp_path):
    backend = GrpcBackend(server.uri)
    source = _write_file(tmp_path / "a.txt", b"hello")
    run_id = new_id()
    batch = Batch(new_id(), "w", [
        RunStart(run_id, "exp", "r", time.time()),
        *[(run_id, "loss", float(i), i, time.time(), None) for i in range(100)],
        Metric(run_id, "acc", 0.5, 1, time.time(), 1),
        Event(new_id(), run_id, "ev", time.time()),
        Artifact(new_id(), run_id, "a.txt", source),
        Artifact(new_id(), run_id, "same-file-again.txt", source),
        ModelRecord(new_id(), run_id, "m", "generic", [ModelFile("a.txt", source)], time.time()),
    ], time.time())
    for _ in range(3):
        backend.write(batch)
    store = backend.store()
    assert len(store.metrics(run_id, "loss")) == 100 and len(store.metrics(run_id, "acc")) == 1
    assert len(store.events(run_id)) == 1
    assert [a.bytes for a in store.artifacts(run_id)] == [5, 5]
    assert [m.files[0].bytes for m in store.models(run_id=run_id)] == [5]
    staging = os.path.join(server.folder, "artifacts", ".uploads")
    assert os.listdir(staging) == []  # every upload was moved into place or discarded
    backend.close()


# ---------------------------------------------------------------------- crash and outage
def test_sigkill_mid_run_then_restart_keeps_every_record_exactly_once(server, tmp_path):
    mbx.autolog(backend=server.uri, experiment="crash", capture_console=False)
    with mbx.start_run(name="long") as run:
        for step in range(3000):
            run.log_metric("loss", float(step), step=step)
            if step == 1000:
                assert mbx.flush(30)
                server.kill(signal.SIGKILL)  # mid-run, with more records on their way
            if step % 500 == 0:
                run.log_event("tick", step=step)
        assert not mbx.flush(1.0)  # nobody to store them: kept in the journal
        server.start()
        for step in range(3000, 4000):
            run.log_metric("loss", float(step), step=step)
        run_id = run.id
    assert mbx.flush(60)
    r = mbx.Client(server.uri).run(run_id)
    assert [p.step for p in r.metrics("loss")] == list(range(4000))
    assert [e.attrs["step"] for e in r.events("tick")] == list(range(0, 3000, 500))
    assert r.status == "finished"


def test_records_logged_while_the_server_is_down_arrive_when_it_starts(server_factory):
    server = server_factory()  # not started yet
    mbx.autolog(backend=server.uri, experiment="late", capture_console=False)
    with mbx.start_run() as run:
        run.log_metric("x", 1.0, step=1)
        run_id = run.id
    assert not mbx.flush(0.5)
    server.start()
    assert mbx.flush(60)
    assert [p.value for p in mbx.Client(server.uri).run(run_id).metrics("x")] == [1.0]


def test_a_watcher_reconnects_and_resumes_without_gaps(server):
    backend = GrpcBackend(server.uri)
    store = GrpcStore(server.uri)
    seen: list[int] = []
    reconnects: list[int] = []
    stop = threading.Event()

    def follow() -> None:
        for change in store.watch(since=0, timeout=90, stop=stop, on_reconnect=reconnects.append):
            seen.append(change.seq)

    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()

    def write_run() -> None:
        run_id = new_id()
        backend.write(Batch(new_id(), "w", [RunStart(run_id, "watched", None, time.time()),
                                           Event(new_id(), run_id, "e", time.time())]))

    def wait_for(seq: int) -> None:
        deadline = time.monotonic() + 60
        while (not seen or seen[-1] < seq) and time.monotonic() < deadline:
            time.sleep(0.05)

    for _ in range(3):
        write_run()
    wait_for(store.last_change_seq())
    server.kill(signal.SIGKILL)
    server.start()
    for _ in range(3):
        write_run()
    wait_for(GrpcStore(server.uri).last_change_seq())
    stop.set()
    watcher.join(30)
    assert not watcher.is_alive()
    assert reconnects, "the stream should have been cut by the restart"
    everything = [c.seq for c in GrpcStore(server.uri).changes(0)]
    assert seen == everything and len(everything) == 1 + 6 * 2  # the experiment, then a run and an event per write
    backend.close()


# ---------------------------------------------------------------------- security and validation
def test_wrong_or_missing_token_is_refused(server_factory, monkeypatch):
    server = server_factory("--token", "s3cret").start()
    batch = Batch(new_id(), "w", [RunStart(new_id(), "exp", None, time.time())])
    monkeypatch.delenv("MODELBOX_TOKEN", raising=False)
    with pytest.raises(BackendError, match="token"):
        GrpcBackend(server.uri).write(batch)
    monkeypatch.setenv("MODELBOX_TOKEN", "wrong")
    with pytest.raises(BackendError, match="token"):
        GrpcBackend(server.uri).write(batch)
    with pytest.raises(BackendError, match="token"):
        mbx.Client(server.uri).runs()
    channel, stub, _ = _stub(server, "wrong")
    assert _code(lambda: stub.ListExperiments(spb.ListExperimentsRequest(), timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
    assert _code(lambda: list(stub.Watch(spb.WatchRequest(since=0), timeout=10))) == grpc.StatusCode.UNAUTHENTICATED
    channel.close()
    monkeypatch.setenv("MODELBOX_TOKEN", "s3cret")
    GrpcBackend(server.uri).write(batch)
    assert len(mbx.Client(server.uri).runs()) == 1


def test_artifact_names_never_escape_the_artifacts_folder(server, tmp_path):
    channel, stub, md = _stub(server)
    run_id = new_id()
    for name in ("../../escape.txt", "/etc/passwd", "a/../../b", "..", "c:/windows", "x\x00y"):
        req = rpb.WriteBatchRequest(batch_id=new_id(), artifacts=[rpb.Artifact(
            id=new_id(), run_id=run_id, kind="file", file=rpb.FileRef(name=name, upload_id=""))])
        assert _code(lambda req=req: stub.WriteBatch(req, timeout=10)) == grpc.StatusCode.INVALID_ARGUMENT, name
        model = rpb.WriteBatchRequest(batch_id=new_id(), models=[rpb.Model(
            id=new_id(), name="m", framework="f", status="draft", files=[rpb.FileRef(name=name)])])
        assert _code(lambda model=model: stub.WriteBatch(model, timeout=10)) == grpc.StatusCode.INVALID_ARGUMENT, name
    for path in ("../modelbox.db", "/etc/passwd", "runs/../../modelbox.db"):
        assert _code(lambda path=path: list(stub.Download(spb.DownloadRequest(path=path), timeout=10))) == \
            grpc.StatusCode.INVALID_ARGUMENT, path
    assert _code(lambda: list(stub.Download(spb.DownloadRequest(path="runs/nothing"), timeout=10))) == grpc.StatusCode.NOT_FOUND
    assert not os.path.exists(os.path.join(server.folder, "escape.txt"))
    channel.close()


def test_malformed_requests_are_invalid_argument(server):
    channel, stub, _ = _stub(server)
    run = new_id()

    def write(**fields):
        return lambda: stub.WriteBatch(rpb.WriteBatchRequest(**{"batch_id": new_id(), **fields}), timeout=10)

    invalid = grpc.StatusCode.INVALID_ARGUMENT
    assert _code(write(batch_id="")) == invalid
    assert _code(write(batch_id="x" * 500)) == invalid
    assert _code(write(run_starts=[rpb.RunStart(run_id="bad id!", experiment="e")])) == invalid
    assert _code(write(run_starts=[rpb.RunStart(run_id=run, experiment="")])) == invalid
    assert _code(write(metrics=rpb.MetricColumns(run_ids=[run], keys=["k"], run_index=[0], key_index=[0],
                                                 values=[1.0, 2.0], steps=[1], timestamps=[1.0]))) == invalid
    assert _code(write(metrics=rpb.MetricColumns(run_ids=[run], keys=["k"], run_index=[3], key_index=[0],
                                                 values=[1.0], steps=[1], timestamps=[1.0]))) == invalid
    assert _code(write(events=[rpb.Event(id=new_id(), run_id=run, name="e", attrs_json="{not json")])) == invalid
    assert _code(write(run_updates=[rpb.RunUpdate(run_id=run, status="exploded")])) == invalid
    assert _code(write(artifacts=[rpb.Artifact(id=new_id(), run_id=run, file=rpb.FileRef(name="a", upload_id="f" * 32))])) == invalid
    assert _code(lambda: stub.GetRun(spb.GetRunRequest(run_id=""), timeout=10)) == invalid
    assert _code(lambda: stub.GetRun(spb.GetRunRequest(run_id="0" * 32), timeout=10)) == grpc.StatusCode.NOT_FOUND
    assert _code(lambda: stub.ListRuns(spb.ListRunsRequest(status="sideways"), timeout=10)) == invalid
    assert _code(lambda: stub.UpdateModel(spb.UpdateModelRequest(model_id="m" * 8, metadata_json="[1]"), timeout=10)) == invalid

    def upload(*messages):
        return lambda: stub.Upload(iter(messages), timeout=10)

    header = rpb.UploadRequest(header=rpb.UploadHeader(upload_id=new_id(), size=3))
    digest = hashlib.sha256(b"abc").hexdigest()
    assert _code(upload(rpb.UploadRequest(chunk=b"abc"))) == invalid  # no header
    assert _code(upload(rpb.UploadRequest(header=rpb.UploadHeader(upload_id="../x", size=3)))) == invalid
    assert _code(upload(header, rpb.UploadRequest(chunk=b"abcd"))) == invalid  # more than announced
    assert _code(upload(header, rpb.UploadRequest(chunk=b"abc"))) == invalid  # no checksum
    assert _code(upload(header, rpb.UploadRequest(chunk=b"abx"), rpb.UploadRequest(sha256=digest))) == grpc.StatusCode.DATA_LOSS
    too_big = rpb.UploadRequest(header=rpb.UploadHeader(upload_id=new_id(), size=1 << 60))
    assert _code(upload(too_big)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stub.Upload(iter([header, rpb.UploadRequest(chunk=b"abc"), rpb.UploadRequest(sha256=digest)]), timeout=10).bytes == 3

    garbage = channel.unary_unary("/modelbox.v1.ModelBox/WriteBatch")
    assert _code(lambda: garbage(b"\xff\xff\xff\xff", timeout=10)) != grpc.StatusCode.OK
    staged = os.listdir(os.path.join(server.folder, "artifacts", ".uploads"))
    assert not [name for name in staged if ".part" in name]  # refused uploads leave no partial files
    channel.close()


def test_messages_larger_than_the_limit_are_refused(server_factory):
    server = server_factory("--max-message-mb", "1").start()
    channel, stub, _ = _stub(server)
    big = rpb.WriteBatchRequest(batch_id=new_id(), params=[rpb.Param(run_id=new_id(), key="k", value_json='"' + "x" * (2 << 20) + '"')])
    assert _code(lambda: stub.WriteBatch(big, timeout=10)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    channel.close()


# ---------------------------------------------------------------------- uploads
def test_a_200_mb_upload_keeps_server_memory_bounded(server, tmp_path):
    path = tmp_path / "big.bin"
    block = os.urandom(1 << 20)
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        for _ in range(200):
            handle.write(block)
            digest.update(block)
    proc = psutil.Process(server.proc.pid)
    baseline = proc.memory_info().rss
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    backend = GrpcBackend(server.uri)
    run_id = new_id()
    try:
        backend.write(Batch(new_id(), "w", [RunStart(run_id, "big", None, time.time()),
                                           Artifact(new_id(), run_id, "big.bin", str(path))]))
    finally:
        done.set()
        sampler.join()
    [art] = backend.store().artifacts(run_id)
    assert art.bytes == 200 << 20 and art.sha256 == digest.hexdigest()
    growth = (peak[0] - baseline) / (1 << 20)
    assert growth < 64, f"server RSS grew by {growth:.0f} MB during a 200 MB upload"
    backend.close()


# ---------------------------------------------------------------------- operations
def test_startup_errors_are_clear(server, tmp_path):
    cmd = [sys.executable, "-m", "modelbox_autolog", "server", "--store", f"sqlite:///{tmp_path}/other.db", "--port", str(server.port)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "in use" in done.stderr
    blocker = _write_file(tmp_path / "not-a-folder", b"")
    cmd = [sys.executable, "-m", "modelbox_autolog.server.cli", "--store", f"sqlite:///{blocker}/x.db", "--port", str(free_port())]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "store" in done.stderr


def test_metrics_endpoint_and_graceful_shutdown(server_factory):
    metrics_port = free_port()
    server = server_factory("--metrics-port", str(metrics_port)).start()
    GrpcBackend(server.uri).write(Batch(new_id(), "w", [RunStart(new_id(), "m", None, time.time())]))
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    for name in ("modelbox_rpc_duration_seconds_bucket", "modelbox_records_written_total", "modelbox_bytes_written_total",
                 "modelbox_active_streams", "process_resident_memory_bytes"):
        assert name in text, name
    assert 'method="WriteBatch"' in text
    assert server.kill(signal.SIGTERM) == 0
    assert "stopped" in server.log()


def test_tls_with_a_private_ca(server_factory, tmp_path, monkeypatch):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        capture_output=True, timeout=60,
    ) if _has_openssl() else None
    if made is None or made.returncode != 0:
        pytest.skip("openssl cannot make a test certificate here")
    server = server_factory("--tls-cert", str(cert), "--tls-key", str(key))
    server.wait_serving = lambda: _wait_port(server)  # the plain health probe cannot speak TLS
    server.start()
    uri = f"grpcs://127.0.0.1:{server.port}"
    monkeypatch.setenv("MODELBOX_TLS_CA", str(cert))
    GrpcBackend(uri).write(Batch(new_id(), "w", [RunStart(new_id(), "tls", None, time.time())]))
    assert [r.experiment for r in mbx.Client(uri).runs()] == ["tls"]
    with pytest.raises(BackendError):  # a plain-text client cannot talk to a TLS server
        GrpcStore(f"grpc://127.0.0.1:{server.port}").experiments()


def _has_openssl() -> bool:
    import shutil

    return shutil.which("openssl") is not None


def _wait_port(server) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", server.port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(server.log())


def test_sigterm_finishes_in_flight_batches(server):
    from modelbox_autolog.backends import BackendUnavailable
    from modelbox_autolog.backends.sqlite import SQLiteStore

    backend = GrpcBackend(server.uri)
    run_id = new_id()
    backend.write(Batch(new_id(), "w", [RunStart(run_id, "term", None, time.time())]))
    acknowledged = []
    refused = []
    first = threading.Event()

    def writer() -> None:
        for n in range(500):
            points = [(run_id, "x", 0.0, n * 5000 + i, 0.0, None) for i in range(5000)]
            try:
                backend.write(Batch(new_id(), "w", points))
            except BackendUnavailable as exc:
                refused.append(exc)
                return
            acknowledged.append(n)
            first.set()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    assert first.wait(60)
    assert server.kill(signal.SIGTERM) == 0
    thread.join(60)
    assert refused and acknowledged
    store = SQLiteStore(f"sqlite:///{server.db}")
    try:
        assert len(store.metrics(run_id, "x")) == 5000 * len(acknowledged)  # every acknowledged batch, nothing else
    finally:
        store.close()
    backend.close()
