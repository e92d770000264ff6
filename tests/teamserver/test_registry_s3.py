"""The registry on the team store with its files in a real S3 bucket: a deleted run's objects go,
``gc`` finds what no record points at, and an ``s3://`` model registered by reference is fetched."""

from __future__ import annotations

import os

import pytest

import modelbox_autolog as mbx
from modelbox_autolog.artifacts import open_artifacts

pytestmark = pytest.mark.timeout(300)


def test_delete_gc_and_s3_references_on_postgres_and_s3(pg_uri, bucket, s3_env, tmp_path):
    uri = f"{pg_uri}?artifacts=s3://{bucket}/team"
    bucket_store = open_artifacts(f"s3://{bucket}/team")
    (tmp_path / "data.bin").write_bytes(os.urandom(100_000))
    mbx.autolog(backend=uri, frameworks=[], experiment="s3", capture_console=False, capture_env=False)
    with mbx.start_run(name="to-delete") as gone:
        gone.log_artifact(str(tmp_path / "data.bin"))
        gone.log_model(str(tmp_path / "data.bin"), name="tmp-model")
    with mbx.start_run(name="kept") as kept:
        kept.log_artifact(str(tmp_path / "data.bin"))
    assert mbx.flush(60)
    client = mbx.Client(uri)
    assert len(list(bucket_store.list("runs/"))) == 2 and len(list(bucket_store.list("models/"))) == 1

    report = client.delete_run(gone.id)
    assert (report.runs, report.models, report.files, report.bytes) == (1, 1, 2, 200_000)
    assert [k for k, _, _ in bucket_store.list("runs/")] == [a.path_or_uri.split("/team/", 1)[1] for a in
                                                            client.run(kept.id).artifacts()]
    assert list(bucket_store.list("models/")) == []

    bucket_store.put("models/orphan/model.bin", iter([b"left behind"]))  # as an interrupted delete would leave
    assert client.gc(older_than_s=0).files == 1  # a dry run
    assert client.gc(delete=True, older_than_s=0).keys == ["models/orphan/model.bin"]
    assert bucket_store.size("models/orphan/model.bin") is None
    assert len(list(bucket_store.list("runs/"))) == 1  # what a record points at stays

    # a model registered by reference to an object in a bucket is fetched with the AWS variables
    bucket_store.put("external/clf/weights.bin", iter([b"w" * 1000]))
    bucket_store.put("external/clf/config.json", iter([b"{}"]))
    ref = client.register_model(f"s3://{bucket}/team/external/clf", name="external-clf")
    assert ref.source_uri == f"s3://{bucket}/team/external/clf" and ref.files == []
    folder = client.download_model("external-clf@latest", tmp_path / "out")
    assert sorted(os.listdir(folder)) == ["config.json", "weights.bin"]
    assert os.path.getsize(os.path.join(folder, "weights.bin")) == 1000
