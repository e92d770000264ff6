"""Keeping a run's stdout/stderr: a tee that writes through to the real stream and keeps a copy.

The copy is held in memory (up to a cap) and written to a file by the exporter thread when the
run ends, so a run that prints nothing costs no file at all. Only Python-level writes are seen
(``print``, logging handlers on sys.stderr); output that C libraries write straight to file
descriptors 1/2 is not.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

MAX_CONSOLE_CHARS = 16 * 1024 * 1024  # past this, the copy stops (the real stream is untouched)


class _Tee:
    def __init__(self, stream: TextIO, owner: ConsoleCapture) -> None:
        self._stream = stream
        self._owner = owner

    def write(self, text: str) -> int:
        result = self._stream.write(text)
        self._owner._keep(text)
        return result

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding, buffer...
        return getattr(self._stream, name)


class ConsoleCapture:
    """Started by an outermost run; ``stop`` returns what was captured ('' when nothing)."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = 0
        self._lock = threading.Lock()
        self._truncated = False
        self._out = _Tee(sys.stdout, self)
        self._err = _Tee(sys.stderr, self)
        sys.stdout, sys.stderr = self._out, self._err  # type: ignore[assignment]

    def _keep(self, text: Any) -> None:
        if not isinstance(text, str) or self._truncated:
            return
        with self._lock:
            if self._size + len(text) > MAX_CONSOLE_CHARS:
                self._truncated = True
                self._parts.append(f"\n[console capture stopped at {MAX_CONSOLE_CHARS} characters]\n")
                return
            self._parts.append(text)
            self._size += len(text)

    def stop(self) -> str:
        # Restore only what is still ours: someone who replaced the stream after us keeps theirs.
        if sys.stdout is self._out:
            sys.stdout = self._out._stream
        if sys.stderr is self._err:
            sys.stderr = self._err._stream
        with self._lock:
            text = "".join(self._parts)
            self._parts = []
        return text


def write_console_file(text: str) -> str:
    """Write captured text to a temporary file (on the exporter thread); returns its path."""
    import os
    import tempfile

    fd, path = tempfile.mkstemp(prefix="modelbox-console-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as handle:
        handle.write(text)
    return path
