"""Writing one batch so that a bad record never blocks the good ones.

Used by the exporter, by journal replay, by spool replay and by ``modelbox sync``. A transient failure
(``BackendUnavailable``) propagates: the caller keeps the whole batch and sends it again. A
permanent one is narrowed down to the records at fault: those the backend names
(``RecordRefused``) are refused with their reason and the rest is written under a derived
batch id; otherwise the batch is halved until the refused records are alone. Derived ids are
deterministic, so sending the same batch again (a retry, a replay) skips what was stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._records import Batch
from .base import Backend, BackendUnavailable, RecordRefused

# (record, reason, detail): called once per refused record
OnRefused = Callable[[Any, str, str], None]


def deliver(backend: Backend, batch: Batch, on_refused: OnRefused) -> bool | None:
    """Write ``batch``; returns what the backend said (False: it had the batch already)."""
    try:
        return backend.write(batch)
    except BackendUnavailable:
        raise
    except RecordRefused as exc:
        named = {id(record): (reason, detail) for record, reason, detail in exc.refusals}
        rest = [record for record in batch.records if id(record) not in named]
        if len(rest) == len(batch.records):  # it named none of ours: narrow it down ourselves
            return _halve(backend, batch, on_refused, exc)
        for record in batch.records:
            if id(record) in named:
                on_refused(record, *named[id(record)])
        if not rest:
            return True
        return deliver(backend, _derived(batch, "x", rest), on_refused)
    except Exception as exc:  # noqa: BLE001 - any other refusal: find the records at fault
        return _halve(backend, batch, on_refused, exc)


def _halve(backend: Backend, batch: Batch, on_refused: OnRefused, exc: Exception) -> bool | None:
    records = batch.records
    if len(records) == 1:
        on_refused(records[0], _reason(exc), str(exc)[:2000])
        return True
    middle = len(records) // 2  # contiguous halves keep the logging order (a run starts before its points)
    first = deliver(backend, _derived(batch, "a", records[:middle]), on_refused)
    second = deliver(backend, _derived(batch, "b", records[middle:]), on_refused)
    return not (first is False and second is False)


def _derived(batch: Batch, tag: str, records: list[Any]) -> Batch:
    return Batch(f"{batch.id}.{tag}", batch.writer, records, batch.created_at, batch.files_root)


def _reason(exc: Exception) -> str:
    """A short cause to count refusals under: the message's first clause, without ids."""
    text = str(exc).split("\n", 1)[0]
    return f"refused by the backend: {text[:200]}" if text else f"refused by the backend ({type(exc).__name__})"
