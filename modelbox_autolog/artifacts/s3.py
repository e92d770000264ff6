"""An S3-compatible bucket as artifact store: ``s3://BUCKET/PREFIX`` through boto3.

Endpoint, region and credentials come from the usual AWS variables (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, profiles...). A stream is
written as a multipart upload of 8 MiB parts, two in flight, so memory stays bounded whatever
the size; the sha256 is computed on the way and checked before the upload is completed, and
a refused or interrupted upload is aborted (its parts deleted), leaving no visible object.
Objects smaller than one part are sent in one request.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import urlsplit

import boto3
import botocore.exceptions
from botocore.config import Config

from .base import (
    ArtifactNotFound,
    ArtifactStore,
    ArtifactStoreError,
    ArtifactStoreUnavailable,
    StoredObject,
    Verifier,
)

PART_BYTES = int(os.environ.get("MODELBOX_S3_PART_MB", "8")) << 20  # S3 allows 5 MiB..5 GiB per part and 10,000 parts: 80 GB at this size
MIN_PART_BYTES = 5 << 20
MAX_PARTS = 9_000  # S3's limit is 10,000; the margin covers a file that grows while it is read
PARTS_IN_FLIGHT = int(os.environ.get("MODELBOX_S3_PARTS_IN_FLIGHT", "2"))
COPY_LIMIT = 5 << 30  # larger objects are copied part by part
READ_CHUNK = 1 << 20
_MISSING = {"404", "NoSuchKey", "NotFound"}
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "Forbidden"}
_TRANSIENT = {"500", "502", "503", "504", "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout"}


def part_size(size_hint: int | None) -> int:
    """The smallest part (less memory) that still fits the announced size in S3's 10,000 parts."""
    if not size_hint:
        return PART_BYTES
    needed = -(-size_hint // MAX_PARTS)
    return max(MIN_PART_BYTES, -(-needed // (1 << 20)) << 20)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ("bucket", "some/prefix")."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise ArtifactStoreError(f"{uri!r} is not an S3 location; expected s3://BUCKET/PREFIX")
    return parts.netloc, parts.path.strip("/")


class S3ArtifactStore(ArtifactStore):
    def __init__(self, uri: str, *, client: object | None = None) -> None:
        self.bucket, self.prefix = parse_s3_uri(uri)
        self.uri = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self.endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if client is None:
            config = Config(
                retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60,
                max_pool_connections=64, request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path"} if self.endpoint else None,
            )
            client = boto3.session.Session().client("s3", endpoint_url=self.endpoint, config=config)
        self.client = client
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._unaborted: list[tuple[str, str]] = []  # (key, upload id) whose abort failed: retried later

    # ------------------------------------------------------------------ helpers
    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _where(self) -> str:
        return f"bucket {self.bucket!r} at {self.endpoint or 'AWS S3'}"

    def _error(self, exc: Exception, doing: str) -> Exception:
        """Our exception for a failed request: missing, denied (permanent) or unavailable (transient)."""
        if isinstance(exc, botocore.exceptions.ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if code == "NoSuchBucket":
                return ArtifactStoreError(f"{doing}: the {self._where()} does not exist; create it first")
            if code in _MISSING or status == "404":
                return ArtifactNotFound(f"{doing}: no such object in {self.uri}")
            if code in _DENIED or status == "403":
                return ArtifactStoreError(
                    f"{doing}: access denied to the {self._where()} ({code or status}); check AWS_ACCESS_KEY_ID / "
                    "AWS_SECRET_ACCESS_KEY and the bucket policy"
                )
            if code in _TRANSIENT or status.startswith("5"):
                return ArtifactStoreUnavailable(f"{doing}: the {self._where()} is unavailable ({code or status})")
            return ArtifactStoreError(f"{doing}: {self._where()}: {code}: {exc}")
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return ArtifactStoreError(f"{doing}: no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
        if isinstance(exc, (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionError,
                            botocore.exceptions.HTTPClientError, ConnectionError, TimeoutError)):
            return ArtifactStoreUnavailable(f"{doing}: cannot reach the {self._where()}: {exc}")
        if isinstance(exc, botocore.exceptions.BotoCoreError):
            return ArtifactStoreError(f"{doing}: {self._where()}: {exc}")
        return exc

    def _call(self, operation: str, doing: str, **kwargs):
        with self.observed(operation):
            try:
                return getattr(self.client, operation)(**kwargs)
            except Exception as exc:
                mapped = self._error(exc, doing)
                if mapped is exc:
                    raise
                raise mapped from exc

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="modelbox-s3")
            return self._pool

    # ------------------------------------------------------------------ writes
    def put(self, key: str, chunks: Iterable[bytes], *, verify: Verifier | None = None,
            size_hint: int | None = None) -> StoredObject:
        full = self._full(key)
        part_bytes = part_size(size_hint)
        if self._unaborted:
            self._retry_aborts()
        doing = f"writing {key}"
        digest = hashlib.sha256()
        size = 0
        pending: list[bytes] = []
        pending_bytes = 0
        upload_id: str | None = None
        parts: list[Future] = []
        try:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                pending.append(chunk)
                pending_bytes += len(chunk)
                if pending_bytes >= part_bytes:
                    if upload_id is None:
                        upload_id = self._call("create_multipart_upload", doing, Bucket=self.bucket, Key=full)["UploadId"]
                    body = _PartBody(pending)
                    pending, pending_bytes = [], 0
                    self._send_part(full, upload_id, parts, body, doing)
            sha = digest.hexdigest()
            if verify is not None:
                verify(size, sha)
            if upload_id is None:
                self._call("put_object", doing, Bucket=self.bucket, Key=full, Body=b"".join(pending))
                return StoredObject(key, size, sha)
            if pending:
                self._send_part(full, upload_id, parts, _PartBody(pending), doing)
            done = [future.result() for future in parts]
            self._call("complete_multipart_upload", doing, Bucket=self.bucket, Key=full, UploadId=upload_id,
                       MultipartUpload={"Parts": done})
            return StoredObject(key, size, sha)
        except BaseException:
            for future in parts:
                future.cancel()
            if upload_id is not None:
                for future in parts:
                    try:
                        future.exception()
                    except BaseException:
                        pass
                self._abort(full, upload_id)
            raise

    def _abort(self, full: str, upload_id: str) -> None:
        """Abort a multipart upload (its parts are deleted); when the endpoint is down, remember it
        and try again before the next write: an incomplete upload is invisible, but it costs."""
        try:
            self._call("abort_multipart_upload", f"aborting {full}", Bucket=self.bucket, Key=full, UploadId=upload_id)
        except ArtifactNotFound:
            pass
        except Exception:
            with self._pool_lock:
                self._unaborted.append((full, upload_id))

    def _retry_aborts(self) -> None:
        with self._pool_lock:
            pending, self._unaborted = self._unaborted, []
        for full, upload_id in pending:
            self._abort(full, upload_id)

    def _send_part(self, full: str, upload_id: str, parts: list[Future], body: _PartBody, doing: str) -> None:
        """Queue one part; wait while too many are in flight (the memory bound)."""
        in_flight = [f for f in parts if not f.done()]
        while len(in_flight) >= PARTS_IN_FLIGHT:
            in_flight[0].result()
            in_flight = [f for f in parts if not f.done()]
        for future in parts:
            if future.done() and future.exception() is not None:
                future.result()  # raise the first failure now, not at the end
        number = len(parts) + 1

        def send() -> dict:
            reply = self._call("upload_part", doing, Bucket=self.bucket, Key=full, UploadId=upload_id,
                               PartNumber=number, Body=body, ContentLength=body.size)
            return {"ETag": reply["ETag"], "PartNumber": number}

        parts.append(self._executor().submit(send))

    def move(self, source: str, dest: str) -> None:
        size = self.size(source)
        if size is None:
            raise ArtifactNotFound(f"no object {source} in {self.uri}")
        src = {"Bucket": self.bucket, "Key": self._full(source)}
        doing = f"moving {source} to {dest}"
        if size <= COPY_LIMIT:
            self._call("copy_object", doing, Bucket=self.bucket, Key=self._full(dest), CopySource=src)
        else:
            self._copy_in_parts(src, self._full(dest), size, doing)
        self.delete(source)

    def _copy_in_parts(self, src: dict, full: str, size: int, doing: str) -> None:
        upload_id = self._call("create_multipart_upload", doing, Bucket=self.bucket, Key=full)["UploadId"]
        try:
            part = 1 << 30
            done = []
            for number, start in enumerate(range(0, size, part), 1):
                reply = self._call("upload_part_copy", doing, Bucket=self.bucket, Key=full, UploadId=upload_id,
                                   PartNumber=number, CopySource=src,
                                   CopySourceRange=f"bytes={start}-{min(start + part, size) - 1}")
                done.append({"ETag": reply["CopyPartResult"]["ETag"], "PartNumber": number})
            self._call("complete_multipart_upload", doing, Bucket=self.bucket, Key=full, UploadId=upload_id,
                       MultipartUpload={"Parts": done})
        except BaseException:
            try:
                self._call("abort_multipart_upload", doing, Bucket=self.bucket, Key=full, UploadId=upload_id)
            except Exception:
                pass
            raise

    def delete(self, key: str) -> None:
        self._call("delete_object", f"deleting {key}", Bucket=self.bucket, Key=self._full(key))

    def abort_incomplete(self, prefix: str, older_than_s: float) -> int:
        """Abort multipart uploads under ``prefix`` started more than ``older_than_s`` ago (a
        server killed mid-upload leaves them, invisible but billed); returns how many."""
        reply = self._call("list_multipart_uploads", "listing incomplete uploads", Bucket=self.bucket,
                           Prefix=self._full(prefix))
        aborted = 0
        for upload in reply.get("Uploads", []):
            if time.time() - upload["Initiated"].timestamp() > older_than_s:
                self._call("abort_multipart_upload", "aborting an old upload", Bucket=self.bucket, Key=upload["Key"],
                           UploadId=upload["UploadId"])
                aborted += 1
        return aborted

    # ------------------------------------------------------------------ reads
    def get(self, key: str) -> Iterator[bytes]:
        reply = self._call("get_object", f"reading {key}", Bucket=self.bucket, Key=self._full(key))
        return self._stream(reply["Body"], key)

    def _stream(self, body, key: str) -> Iterator[bytes]:
        try:
            while True:
                try:
                    chunk = body.read(READ_CHUNK)
                except Exception as exc:
                    raise self._error(exc, f"reading {key}") from exc
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    def size(self, key: str) -> int | None:
        try:
            return int(self._call("head_object", f"looking up {key}", Bucket=self.bucket, Key=self._full(key))["ContentLength"])
        except ArtifactNotFound:
            return None

    def list(self, prefix: str) -> Iterator[tuple[str, int, float]]:
        paginator = self.client.get_paginator("list_objects_v2")
        strip = len(self.prefix) + 1 if self.prefix else 0
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._full(prefix)):
                for item in page.get("Contents", []):
                    yield item["Key"][strip:], int(item["Size"]), item["LastModified"].timestamp()
        except Exception as exc:
            raise self._error(exc, f"listing {prefix}") from exc

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full(key)}"

    def key_of(self, location: str) -> str | None:
        head = f"s3://{self.bucket}/" + (f"{self.prefix}/" if self.prefix else "")
        return location[len(head):] if location.startswith(head) else None

    def presign(self, key: str, expires_s: int = 3600) -> str | None:
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._full(key)}, ExpiresIn=int(expires_s)
        )

    def check(self) -> None:
        """The bucket exists, and we may write and delete under the prefix."""
        try:
            self._call("head_bucket", f"opening {self.uri}", Bucket=self.bucket)
        except ArtifactNotFound:
            raise ArtifactStoreError(f"the {self._where()} does not exist; create it first") from None
        probe = f".modelbox-probe-{os.getpid()}-{os.urandom(4).hex()}"
        self._call("put_object", f"writing a probe object under {self.uri}", Bucket=self.bucket, Key=self._full(probe), Body=b"")
        self.delete(probe)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)


class _PartBody(io.RawIOBase):
    """One part as a readable, seekable file over the chunks received, never joined into one
    large buffer: a multi-megabyte allocation per part would fragment the heap and grow the
    server's memory by more than the parts themselves."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks
        self.size = sum(len(c) for c in chunks)
        self._pos = 0
        self._index = 0  # chunk holding ``_pos``
        self._offset = 0  # ``_pos`` within that chunk

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self._pos + offset if whence == io.SEEK_CUR else self.size + offset
        target = max(0, min(target, self.size))
        index, start = 0, 0
        while index < len(self._chunks) and start + len(self._chunks[index]) <= target:
            start += len(self._chunks[index])
            index += 1
        self._pos, self._index, self._offset = target, index, target - start
        return target

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.size - self._pos
        out = []
        while size > 0 and self._index < len(self._chunks):
            chunk = self._chunks[self._index]
            piece = chunk[self._offset:self._offset + size]
            out.append(piece)
            size -= len(piece)
            self._pos += len(piece)
            self._offset += len(piece)
            if self._offset >= len(chunk):
                self._index += 1
                self._offset = 0
        return b"".join(out)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
