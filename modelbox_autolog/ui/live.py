"""Live updates: one poller of the store's change feed per app, fanned out to every open page
as server-sent events (``GET /api/v1/changes/stream``). The feed is read once per interval
whatever the number of browsers; a page that falls behind is told to reload, never blocks the
others."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from ..entities import ChangeEvent

POLL_S = 0.5
HEARTBEAT_S = 15.0
QUEUE = 1000


class ChangeHub:
    def __init__(self, read_changes: Callable[[int, int], list[ChangeEvent]], last_seq: Callable[[], int]) -> None:
        self._read = read_changes
        self._last_seq = last_seq
        self._subscribers: set[asyncio.Queue] = set()
        self._task: asyncio.Task | None = None
        self.seq: int | None = None
        self.error: str | None = None

    async def subscribe(self, since: int | None) -> AsyncIterator[list[ChangeEvent] | None]:
        """Batches of changes after ``since`` (None: from now); ``None`` means "you fell behind: reload"."""
        queue: asyncio.Queue = asyncio.Queue(QUEUE)
        if since is not None:  # catch up on what happened before this page connected
            backlog = await anyio.to_thread.run_sync(self._read, since, QUEUE)
            if backlog:
                yield backlog
        self._subscribers.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._poll())
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)

    async def _poll(self) -> None:
        while self._subscribers:
            try:
                if self.seq is None:
                    self.seq = await anyio.to_thread.run_sync(self._last_seq)
                changes = await anyio.to_thread.run_sync(self._read, self.seq, QUEUE)
                self.error = None
            except Exception as exc:  # the store is unreachable: keep trying, pages show the state
                self.error = str(exc)
                changes = []
            if changes:
                self.seq = changes[-1].seq
                for queue in list(self._subscribers):
                    try:
                        queue.put_nowait(changes)
                    except asyncio.QueueFull:
                        with contextlib.suppress(asyncio.QueueEmpty):
                            while True:
                                queue.get_nowait()
                        queue.put_nowait(None)
            await asyncio.sleep(POLL_S)


def sse(event: str, data: Any, event_id: int | None = None) -> bytes:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), default=repr))
    return ("\n".join(lines) + "\n\n").encode()


async def event_stream(hub: ChangeHub, since: int | None, is_disconnected: Callable) -> AsyncIterator[bytes]:
    yield b"retry: 2000\n\n"
    changes = hub.subscribe(since)
    waiting: asyncio.Task | None = None
    try:
        while not await is_disconnected():
            if waiting is None:
                waiting = asyncio.ensure_future(changes.__anext__())
            done, _ = await asyncio.wait({waiting}, timeout=HEARTBEAT_S)
            if not done:
                yield b": keep-alive\n\n"
                continue
            batch = waiting.result()
            waiting = None
            if batch is None:
                yield sse("reload", {})
                continue
            for change in batch:
                yield sse("change", {"seq": change.seq, "kind": change.kind, "object_type": change.object_type,
                                     "object_id": change.object_id, "payload": change.payload}, change.seq)
    finally:
        if waiting is not None:
            waiting.cancel()
        await changes.aclose()
