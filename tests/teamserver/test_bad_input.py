"""Bad input for the team server: wrong password, missing database, missing or forbidden bucket,
S3 down during an upload, the database restarted mid-run. Each ends in a precise error, or a
transient failure the client retries (journaling meanwhile); never a half-written batch or a
visible partial object."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import modelbox_autolog as mbx
from modelbox_autolog._records import Artifact, Batch, RunStart, new_id
from modelbox_autolog.backends import BackendUnavailable
from modelbox_autolog.backends.grpc import GrpcBackend
from modelbox_autolog.backends.postgres import PostgresStore

from .components import S3_OUTSIDER, TcpProxy, free_port
from .replicas import Replica

pytestmark = pytest.mark.timeout(300)


def _start_error(store: str, artifacts: str, env: dict[str, str]) -> str:
    cmd = [sys.executable, "-m", "modelbox_autolog", "server", "--store", store, "--artifacts", artifacts,
           "--port", str(free_port())]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, **env})
    assert done.returncode == 2, done.stdout + done.stderr
    return done.stderr


def test_startup_errors_name_the_database_or_bucket_precisely(pg_cluster, pg_uri, bucket, s3_env):
    env = s3_env.env()
    database = pg_uri.rsplit("/", 1)[1]
    good = f"s3://{bucket}/team"
    text = _start_error(pg_cluster.uri(database, password="wrong"), good, env)
    assert "cannot log in to PostgreSQL 127.0.0.1" in text and "password authentication failed" in text
    assert "does not exist" in _start_error(pg_cluster.uri("missing_db"), good, env)
    text = _start_error(f"postgresql://modelbox:x@127.0.0.1:{free_port()}/db", good, env)
    assert "cannot reach PostgreSQL" in text
    text = _start_error(pg_uri, "s3://no-such-bucket/team", env)
    assert "no-such-bucket" in text and "does not exist" in text
    outsider = {**env, "AWS_ACCESS_KEY_ID": S3_OUTSIDER[0], "AWS_SECRET_ACCESS_KEY": S3_OUTSIDER[1]}
    text = _start_error(pg_uri, good, outsider)
    assert "access denied" in text and bucket in text
    dead = {**env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    assert "cannot reach the bucket" in _start_error(pg_uri, good, dead)
    # the first location given is remembered; a replica started with another one is refused
    replica = Replica(os.path.join(os.path.dirname(s3_env.folder), f"r-{new_id()[:6]}"), pg_uri, good, env)
    try:
        replica.start()
    finally:
        replica.stop()
    assert "keeps its files in" in _start_error(pg_uri, f"s3://{bucket}/elsewhere", env)


def test_s3_down_during_an_upload_leaves_nothing_visible_and_a_retry_succeeds(pg_uri, bucket, s3_env, tmp_path):
    proxy = TcpProxy(s3_env.port).start()
    env = {**s3_env.env(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}"}
    replica = Replica(str(tmp_path / "replica"), pg_uri, f"s3://{bucket}/team", env).start()
    path = tmp_path / "big.bin"
    with open(path, "wb") as handle:
        for _ in range(96):
            handle.write(os.urandom(1 << 20))
    backend = GrpcBackend(replica.uri)
    run_id = new_id()
    batch = Batch(new_id(), "w", [RunStart(run_id, "s3down", None, time.time()), Artifact(new_id(), run_id, "big.bin", str(path))])
    proxy.cut_after = proxy.forwarded + (24 << 20)  # the endpoint dies with the upload a quarter through
    try:
        with pytest.raises(BackendUnavailable, match="unavailable|cannot reach"):
            backend.write(batch)
        client = s3_env.client()
        assert client.list_objects_v2(Bucket=bucket, Prefix="team/runs/").get("KeyCount", 0) == 0
        assert [k["Key"] for k in client.list_objects_v2(Bucket=bucket, Prefix="team/.uploads/").get("Contents", [])
                if not k["Key"].endswith(".done")] == []
        proxy = TcpProxy(s3_env.port)  # the endpoint comes back (same port)
        proxy.port = int(env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
        proxy.start()
        backend.write(batch)  # the exporter's retry: same batch id
        backend.write(batch)
        store = backend.store()
        [artifact] = store.artifacts(run_id)
        assert artifact.bytes == 96 << 20
        assert client.list_objects_v2(Bucket=bucket, Prefix="team/runs/")["KeyCount"] == 1
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []  # the cut upload was aborted
    finally:
        proxy.cut()
        backend.close()
        replica.stop()


def _health(port: int) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status


def _wait_health(port: int, status: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while _health(port) != status:
        assert time.monotonic() < deadline, f"health never became {status}"
        time.sleep(0.2)


def test_database_down_and_restarted_mid_run_nothing_lost_nothing_twice(pg_cluster, replicas, pg_uri):
    [replica] = replicas(1)
    mbx.autolog(backend=replica.uri, experiment="pg-restart", capture_console=False)
    total = 60_000
    with mbx.start_run(name="restart") as run:
        for step in range(total):
            run.log_metric("x", float(step), step=step)
            if step == total // 3:  # batches are in flight: the exporter writes while we log
                pg_cluster.stop()
                _wait_health(replica.port, health_pb2.HealthCheckResponse.NOT_SERVING)
            if step == 2 * total // 3:
                pg_cluster.start()
                _wait_health(replica.port, health_pb2.HealthCheckResponse.SERVING)
    assert mbx.flush(120)
    store = PostgresStore(pg_uri)
    try:
        points = store.metrics(run.id, "x")
        assert [p.step for p in points] == list(range(total))
        assert store.run(run.id).status == "finished"
    finally:
        store.close()
