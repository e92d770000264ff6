"""Keeping a run's stdout/stderr: a tee that writes through to the real stream and to a file.

Only Python-level writes are seen (``print``, logging handlers on sys.stderr); output that C
libraries write straight to file descriptors 1/2 is not.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from typing import Any, TextIO

MAX_CONSOLE_BYTES = 50 * 1024 * 1024  # past this, the copy stops (the real stream is untouched)


class _Tee:
    def __init__(self, stream: TextIO, sink: Any, lock: threading.Lock, budget: list[int]) -> None:
        self._stream = stream
        self._sink = sink
        self._lock = lock
        self._budget = budget

    def write(self, text: str) -> int:
        result = self._stream.write(text)
        try:
            if self._budget[0] > 0 and isinstance(text, str):
                with self._lock:
                    self._sink.write(text)
                    self._budget[0] -= len(text)
        except Exception:
            pass
        return result

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding, buffer...
        return getattr(self._stream, name)


class ConsoleCapture:
    """Started by an outermost run; ``stop`` returns the path of what was captured (or None)."""

    def __init__(self) -> None:
        fd, self.path = tempfile.mkstemp(prefix="modelbox-console-", suffix=".log")
        self._sink = os.fdopen(fd, "w", encoding="utf-8", errors="replace")
        self._lock = threading.Lock()
        budget = [MAX_CONSOLE_BYTES]
        self._out = _Tee(sys.stdout, self._sink, self._lock, budget)
        self._err = _Tee(sys.stderr, self._sink, self._lock, budget)
        sys.stdout, sys.stderr = self._out, self._err  # type: ignore[assignment]

    def stop(self) -> str | None:
        # Restore only what is still ours: someone who replaced the stream after us keeps theirs.
        if sys.stdout is self._out:
            sys.stdout = self._out._stream
        if sys.stderr is self._err:
            sys.stderr = self._err._stream
        with self._lock:
            self._sink.close()
        if os.path.getsize(self.path) == 0:
            os.unlink(self.path)
            return None
        return self.path
