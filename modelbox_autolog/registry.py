"""Models no run produced, and getting model files out: ``Client.register_model`` and
``Client.download_model`` (with references such as ``s3://``, ``https://`` and ``hf://``).

A local file or folder is written as an ordinary batch holding one model record (no run), so
its files travel the way a run's do: copied into the artifact store in chunks, or uploaded to a
server with their sha256 checked. A URI is stored as the model's ``source_uri``; downloading
such a model fetches it when the scheme can be read here, and otherwise returns the URI.
"""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from ._records import Batch, ModelFile, ModelRecord, model_file_paths, new_id, reference_uri
from ._values import to_attrs, to_key, to_tags
from .backends import Backend, BackendError, NotFound, Store, open_backend
from .backends.files import CHUNK, inside, transfer_progress, write_stream
from .entities import ModelInfo

Progress = Callable[[int, int], None]  # (bytes done, bytes in all; 0 when unknown)
FETCH_TIMEOUT_S = 60.0


def register_model(client: Any, path_or_uri: str | os.PathLike[str], name: str, framework: str | None,
                   metadata: dict[str, Any] | None, labels: dict[str, Any] | None, datasets: list[str] | None,
                   progress: Progress | None = None) -> ModelInfo:
    """See ``Client.register_model``."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("register_model needs a name= for the model")
    text = os.fspath(path_or_uri)
    source_uri = reference_uri(text)
    files = []
    if source_uri is None:
        source = os.path.abspath(text.removeprefix("file://"))
        files = []
        for name_inside, path in model_file_paths(source):
            st = os.stat(path)  # the file must not change between here and the copy
            files.append(ModelFile(name_inside, path, False, [st.st_size, st.st_mtime_ns]))
        if not files:
            raise FileNotFoundError(f"register_model: nothing at {source} (give a file, a folder or a URI such as "
                                    "s3://bucket/model, https://..., hf://org/name)")
    record = ModelRecord(
        id=new_id(), run_id=None, name=to_key(name.strip()), framework=framework or "unknown", files=files,
        created_at=time.time(), metadata=to_attrs(metadata or {}),
        labels=to_tags({k: v for k, v in (labels or {}).items() if v is not None}),
        datasets=[str(d) for d in (datasets or [])], source_uri=source_uri,
    )
    batch = Batch(id=new_id(), writer="register_model", records=[record], created_at=time.time())
    store = client.store
    backend = store if isinstance(store, Backend) else open_backend(client.uri)
    total = sum(os.path.getsize(f.source_path) for f in files)
    token = transfer_progress.set(_counter(progress, total) if progress is not None else None)
    try:
        backend.write(batch)
    finally:
        transfer_progress.reset(token)
        if backend is not store:
            backend.close()
    return client.model(record.id)


def _counter(progress: Progress, total: int) -> Callable[[int], None]:
    done = [0]

    def advance(count: int) -> None:
        done[0] += count
        progress(done[0], total)

    return advance


def copy_stream(chunks: Iterable[bytes], target: str, total: int | None, progress: Progress | None) -> tuple[int, str]:
    """Write ``chunks`` to ``target`` atomically, reporting progress."""
    if progress is None:
        return write_stream(chunks, target)
    done = 0

    def counted() -> Iterable[bytes]:
        nonlocal done
        for chunk in chunks:
            done += len(chunk)
            progress(done, total or 0)
            yield chunk

    return write_stream(counted(), target)


def download_model(store: Store, info: ModelInfo, dest_dir: str, progress: Progress | None = None) -> str:
    """See ``Client.download_model``."""
    if info.source_uri:
        return _fetch_reference(info, dest_dir, progress)
    target = os.path.join(dest_dir, f"{info.name}-v{info.version}")
    os.makedirs(target, exist_ok=True)
    missing = [f.name for f in info.files if f.bytes is None]
    if missing:
        raise NotFound(f"model {info.id} file {missing[0]!r} was never stored (its source was missing when logged)")
    total = sum(f.bytes or 0 for f in info.files)
    done = 0
    for file in info.files:
        report = None if progress is None else (lambda n, _t, base=done: progress(base + n, total))
        copy_stream(store.read_file(file.path_or_uri), inside(target, file.name), file.bytes, report)
        done += file.bytes or 0
    return target


def _fetch_reference(info: ModelInfo, dest_dir: str, progress: Progress | None) -> str:
    """Fetch a model registered by reference into ``dest_dir/NAME-vVERSION/``; its URI when the
    scheme cannot be read here (``hf://``, ``gs://``...: use that ecosystem's own tools)."""
    uri = info.source_uri or ""
    parts = urlsplit(uri)
    basename = unquote(parts.path.rstrip("/").rsplit("/", 1)[-1]) or "model"
    target = os.path.join(dest_dir, f"{info.name}-v{info.version}")
    if parts.scheme in ("http", "https"):
        os.makedirs(target, exist_ok=True)
        request = urllib.request.Request(uri, headers={"User-Agent": "modelbox-autolog"})
        try:
            with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310 - the user's own URI
                total = int(response.headers.get("content-length") or 0)
                copy_stream(iter(lambda: response.read(CHUNK), b""), inside(target, basename), total, progress)
        except OSError as exc:
            raise BackendError(f"cannot fetch model {info.name} v{info.version} from {uri}: {exc}") from exc
        return target
    if parts.scheme == "s3":
        try:
            from .artifacts.s3 import S3ArtifactStore
        except ImportError:
            return uri  # boto3 is not installed: the reference is all we can give
        bucket_store = S3ArtifactStore(f"s3://{parts.netloc}")
        key = parts.path.lstrip("/")
        objects = [(k, size) for k, size, _ in bucket_store.list(key.rstrip("/") + "/")] if not bucket_store.size(key) else []
        if not objects:
            objects = [(key, bucket_store.size(key) or 0)]
        os.makedirs(target, exist_ok=True)
        total, done = sum(size for _, size in objects), 0
        for object_key, size in objects:
            name = object_key[len(key):].lstrip("/") if object_key != key else basename
            report = None if progress is None else (lambda n, _t, base=done: progress(base + n, total))
            copy_stream(bucket_store.get(object_key), inside(target, name), size, report)
            done += size
        return target
    return uri
