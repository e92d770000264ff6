"""The S3 artifact store against a real S3-compatible server: streaming multipart writes with
sha256 checked, nothing visible after a refused or interrupted upload, precise errors."""

from __future__ import annotations

import hashlib
import os
import urllib.request

import pytest

import modelbox_autolog as mbx
from modelbox_autolog.artifacts import (
    ArtifactNotFound,
    ArtifactStoreError,
    ArtifactStoreUnavailable,
    open_artifacts,
)
from modelbox_autolog.artifacts.s3 import PART_BYTES

from .components import S3_OUTSIDER, free_port

pytestmark = pytest.mark.timeout(300)


def _stream(total: int, piece: int = 256 << 10, seed: bytes = b"x"):
    block = hashlib.sha256(seed).digest() * (piece // 32)
    sent = 0
    while sent < total:
        part = block[: min(piece, total - sent)]
        sent += len(part)
        yield part


def _sha(total: int) -> str:
    digest = hashlib.sha256()
    for chunk in _stream(total):
        digest.update(chunk)
    return digest.hexdigest()


def _incomplete(s3_env, bucket: str) -> list:
    return s3_env.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def test_small_and_multipart_objects_round_trip(bucket, s3_env):
    store = open_artifacts(f"s3://{bucket}/team/a")
    store.check()
    small = store.put("runs/r/a/notes.txt", [b"hello ", b"world"])
    assert small.bytes == 11 and small.sha256 == hashlib.sha256(b"hello world").hexdigest()
    size = 2 * PART_BYTES + 12345  # three parts, the last one short
    big = store.put("runs/r/b/weights.bin", _stream(size))
    assert (big.bytes, big.sha256) == (size, _sha(size))
    assert store.size("runs/r/b/weights.bin") == size and store.size("runs/r/none") is None
    digest = hashlib.sha256()
    for chunk in store.get("runs/r/b/weights.bin"):
        assert len(chunk) <= 1 << 20
        digest.update(chunk)
    assert digest.hexdigest() == big.sha256
    # keys live under the prefix; locations are s3:// URIs that map back to keys
    keys = s3_env.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(k["Key"] for k in keys) == ["team/a/runs/r/a/notes.txt", "team/a/runs/r/b/weights.bin"]
    location = store.location("runs/r/a/notes.txt")
    assert location == f"s3://{bucket}/team/a/runs/r/a/notes.txt" and store.key_of(location) == "runs/r/a/notes.txt"
    assert store.key_of(f"s3://{bucket}/other/x") is None
    assert sorted(k for k, _, _ in store.list("runs/r/")) == ["runs/r/a/notes.txt", "runs/r/b/weights.bin"]
    store.move("runs/r/a/notes.txt", "runs/r/c/moved.txt")
    assert store.size("runs/r/a/notes.txt") is None and b"".join(store.get("runs/r/c/moved.txt")) == b"hello world"
    with urllib.request.urlopen(store.presign("runs/r/c/moved.txt", 60), timeout=10) as reply:
        assert reply.read() == b"hello world"
    store.delete("runs/r/c/moved.txt")
    store.delete("runs/r/c/moved.txt")  # deleting twice is fine
    with pytest.raises(ArtifactNotFound):
        list(store.get("runs/r/c/moved.txt"))
    assert _incomplete(s3_env, bucket) == []


@pytest.mark.parametrize("size", [1000, 2 * PART_BYTES + 5])
def test_a_refused_checksum_leaves_no_object_and_no_parts(bucket, s3_env, size):
    store = open_artifacts(f"s3://{bucket}")

    def refuse(received: int, sha: str) -> None:
        raise ValueError("sha256 mismatch")

    with pytest.raises(ValueError):
        store.put("x/refused.bin", _stream(size), verify=refuse)
    assert store.size("x/refused.bin") is None
    assert _incomplete(s3_env, bucket) == []


def test_an_interrupted_stream_leaves_no_object_and_no_parts(bucket, s3_env):
    store = open_artifacts(f"s3://{bucket}/p")

    def dies_midway():
        yield from _stream(3 * PART_BYTES)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.put("x/cut.bin", dies_midway())
    assert store.size("x/cut.bin") is None
    assert s3_env.client().list_objects_v2(Bucket=bucket).get("Contents", []) == []
    assert _incomplete(s3_env, bucket) == []


def test_precise_errors_for_missing_bucket_denied_access_and_a_dead_endpoint(s3_env, bucket, monkeypatch):
    with pytest.raises(ArtifactStoreError, match="does not exist"):
        open_artifacts("s3://no-such-bucket-here/x").check()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_OUTSIDER[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_OUTSIDER[1])
    with pytest.raises(ArtifactStoreError, match="access denied|Forbidden|403"):
        open_artifacts(f"s3://{bucket}/x").check()
    observed = []
    denied = open_artifacts(f"s3://{bucket}/x")
    denied.observer = lambda op, seconds, error: observed.append((op, error))
    with pytest.raises(ArtifactStoreError, match="access denied"):
        denied.put("k", [b"data"])
    assert observed == [("put_object", "AccessDenied")]  # what /metrics counts, by S3 error code
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    dead = open_artifacts(f"s3://{bucket}/x")
    dead.observer = lambda op, seconds, error: observed.append((op, error))
    with pytest.raises(ArtifactStoreUnavailable, match="cannot reach"):
        dead.put("k", [b"data"])
    assert observed[-1] == ("put_object", "EndpointConnectionError")


def test_a_sqlite_store_keeps_its_files_in_a_bucket(bucket, s3_env, tmp_path):
    uri = f"sqlite:///{tmp_path}/modelbox.db?artifacts=s3://{bucket}/team"
    payload = os.urandom(3 * 1024 * 1024)
    (tmp_path / "weights.bin").write_bytes(payload)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "w.bin").write_bytes(payload[:1000])
    mbx.autolog(backend=uri, experiment="s3", capture_console=False)
    with mbx.start_run() as run:
        run.log_artifact(str(tmp_path / "weights.bin"))
        model = run.log_model(str(tmp_path / "model"), name="m", framework="generic")
    assert mbx.flush(30)
    client = mbx.Client(uri)
    [artifact] = client.run(run.id).artifacts()
    assert artifact.path_or_uri.startswith(f"s3://{bucket}/team/runs/{run.id}/")
    assert artifact.sha256 == hashlib.sha256(payload).hexdigest() and artifact.bytes == len(payload)
    path = client.download_artifact(run.id, "weights.bin", tmp_path / "out")
    assert open(path, "rb").read() == payload
    folder = client.download_model(model.id, tmp_path / "models")
    assert open(os.path.join(folder, "w.bin"), "rb").read() == payload[:1000]


def test_a_sqlite_server_with_its_files_in_a_bucket(bucket, s3_env, tmp_path):
    from tests.server.conftest import ServerProcess

    server = ServerProcess(str(tmp_path / "server"), "--artifacts", f"s3://{bucket}/solo")
    try:
        server.start()
        payload = os.urandom(20000)
        (tmp_path / "w.bin").write_bytes(payload)
        mbx.autolog(backend=server.uri, experiment="solo", capture_console=False)
        with mbx.start_run() as run:
            run.log_artifact(str(tmp_path / "w.bin"))
        assert mbx.flush(30)
        keys = [o["Key"] for o in s3_env.client().list_objects_v2(Bucket=bucket, Prefix="solo/")["Contents"]]
        assert keys == [f"solo/runs/{run.id}/{mbx.Client(server.uri).run(run.id).artifacts()[0].id}/w.bin"]
        path = mbx.Client(server.uri).download_artifact(run.id, "w.bin", tmp_path / "out")
        assert open(path, "rb").read() == payload
    finally:
        server.stop()
