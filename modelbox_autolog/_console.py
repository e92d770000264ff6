"""Keeping stdout/stderr: a tee that writes through to the real stream and keeps a copy.

Under ``autolog()`` one capture covers the whole process, from ``autolog()`` to exit (the
final traceback included), cut into the console logs of the fits' runs; a run opened with
``start_run`` keeps its own, from its start to its end. The
copy is held in memory, with carriage-return progress bars (tqdm, Keras) collapsed to their
last frame as they come, up to a cap, and written to a file by the exporter thread. Only
Python-level writes are seen (``print``, logging handlers on sys.stderr); output that C
libraries write straight to file descriptors 1/2 is not.
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
    """``stop`` returns what was captured ('' when nothing), progress bars collapsed."""

    def __init__(self) -> None:
        self._lines: list[str] = []  # finished lines, each ending with "\n"
        self._line: list[str] = []  # the line being written
        self._size = 0
        self._lock = threading.Lock()
        self._truncated = False
        self._out = _Tee(sys.stdout, self)
        self._err = _Tee(sys.stderr, self)
        sys.stdout, sys.stderr = self._out, self._err  # type: ignore[assignment]

    def _keep(self, text: Any) -> None:
        if not isinstance(text, str) or not text or self._truncated:
            return
        with self._lock:
            if "\r" not in text and "\n" not in text:
                self._line.append(text)
                self._size += len(text)
            else:
                self._keep_lines(text)
            if self._size > MAX_CONSOLE_CHARS:
                self._truncated = True
                self._lines.append(f"\n[console capture stopped at {MAX_CONSOLE_CHARS} characters]\n")

    def _keep_lines(self, text: str) -> None:
        pieces = text.replace("\r\n", "\n").split("\n")
        last = len(pieces) - 1
        for index, piece in enumerate(pieces):
            if "\r" in piece:  # a carriage return redraws the line: keep its last (non-empty) frame
                frames = ["".join(self._line) + piece.split("\r", 1)[0], *piece.split("\r")[1:]]
                shown = next((frame for frame in reversed(frames) if frame), "")
                self._size -= sum(map(len, self._line))
                self._line = [shown]
                self._size += len(shown)
            elif piece:
                self._line.append(piece)
                self._size += len(piece)
            if index < last:
                self._lines.append("".join(self._line) + "\n")
                self._line = []
                self._size += 1

    def text(self) -> str:
        with self._lock:
            return "".join(self._lines) + "".join(self._line)

    def take(self) -> str:
        """What was kept since the last ``take``, and start afresh (the capture goes on)."""
        with self._lock:
            text = "".join(self._lines) + "".join(self._line)
            self._lines, self._line, self._size = [], [], 0
            return text

    def stop(self) -> str:
        # Restore only what is still ours: someone who replaced the stream after us keeps theirs.
        if sys.stdout is self._out:
            sys.stdout = self._out._stream
        if sys.stderr is self._err:
            sys.stderr = self._err._stream
        text = self.text()
        with self._lock:
            self._lines, self._line = [], []
        return text


# ---------------------------------------------------------------------- the process console
_process: ConsoleCapture | None = None
_process_lock = threading.Lock()


def start_process_capture() -> bool:
    """Capture the whole process from now on (``autolog()``); idempotent. False if unavailable."""
    global _process
    with _process_lock:
        if _process is None:
            _process = ConsoleCapture()
        return True


def process_capture_active() -> bool:
    return _process is not None


def take_process_text() -> str:
    """The process capture's text since the last call (the capture goes on)."""
    capture = _process
    return capture.take() if capture is not None else ""


def stop_process_capture() -> str:
    """Stop the process capture; its text ('' when none or nothing was printed)."""
    global _process
    with _process_lock:
        capture, _process = _process, None
    return capture.stop() if capture is not None else ""


def _reset_after_fork() -> None:
    global _process, _process_lock
    _process_lock = threading.Lock()
    _process = None  # a forked child's output is its own; the parent keeps its capture (the tee stays, harmless)


try:
    import os as _os

    _os.register_at_fork(after_in_child=_reset_after_fork)
except AttributeError:  # pragma: no cover - no fork on this platform
    pass


def write_console_file(text: str) -> str:
    """Write captured text to a temporary file (on the exporter thread); returns its path."""
    import os
    import tempfile

    fd, path = tempfile.mkstemp(prefix="modelbox-console-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as handle:
        handle.write(text)
    return path
