"""Batches as JSON lines: the format of the offline spool and of the exporter's journal.

One line per batch. Records are grouped by type; each type is a list of rows in field
order, which keeps lines compact and encoding fast. NaN and infinities use JSON's common
``NaN``/``Infinity`` extension so metric values round-trip exactly.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from typing import Any

from ._records import RECORD_BY_NAME, RECORD_TYPES, Batch, Metric, ModelFile, ModelRecord

FORMAT_VERSION = 1
_FIELDS = {t: tuple(f.name for f in fields(t)) for t in RECORD_TYPES if t is not Metric}
_FIELDS[Metric] = Metric._fields


def _row(record: Any) -> list[Any]:
    cls = type(record)
    if cls is tuple or cls is Metric:
        return list(record)
    if cls is ModelRecord:
        row = [getattr(record, name) for name in _FIELDS[ModelRecord]]
        row[_FIELDS[ModelRecord].index("files")] = [[f.name, f.source_path, f.delete_source] for f in record.files]
        return row
    return [getattr(record, name) for name in _FIELDS[type(record)]]


def encode_batch(batch: Batch) -> str:
    groups: dict[str, list[list[Any]]] = {}
    for record in batch.records:
        name = "Metric" if type(record) is tuple else type(record).__name__
        groups.setdefault(name, []).append(_row(record))
    doc = {"v": FORMAT_VERSION, "id": batch.id, "writer": batch.writer, "created_at": batch.created_at, "records": groups}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=repr)


def decode_batch(line: str, files_root: str | None = None) -> Batch:
    """Parse one line; relative source paths are resolved against ``files_root``."""
    doc = json.loads(line)
    if doc.get("v", 0) > FORMAT_VERSION:
        raise ValueError(f"spool format version {doc.get('v')} is newer than this library understands ({FORMAT_VERSION})")
    records: list[Any] = []
    for type_name in (t.__name__ for t in RECORD_TYPES):
        rows = doc["records"].get(type_name)
        if not rows:
            continue
        cls = RECORD_BY_NAME[type_name]
        if cls is Metric:
            records.extend(tuple(row) for row in rows)
            continue
        for row in rows:
            record = cls(*row)
            if cls is ModelRecord:
                record.files = [ModelFile(n, _resolve(p, files_root), d) for n, p, d in record.files]
            elif hasattr(record, "source_path"):
                record.source_path = _resolve(record.source_path, files_root)
            records.append(record)
    return Batch(id=doc["id"], writer=doc.get("writer", ""), records=records, created_at=doc.get("created_at", 0.0))


def _resolve(path: str, root: str | None) -> str:
    if root is None or os.path.isabs(path):
        return path
    return os.path.join(root, path)
