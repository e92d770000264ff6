"""Is the process that opened a run still alive? Identity of this process, and the check.

A run records its owner: host name, kernel boot id, pid namespace, pid and the process's
start time (clock ticks since boot, from ``/proc``, which tells a reused pid apart). A reader
on the same machine (same host, boot and pid namespace) answers at once; anywhere else the
owner's exporter keeps a lease (a heartbeat every ``interval`` seconds, ``lease_s`` long)
and a run whose lease ran out reads as ``killed``.
"""

from __future__ import annotations

import os
import socket
from typing import Any

HEARTBEAT_S = 10.0  # default heartbeat interval (MODELBOX_HEARTBEAT_S)


def lease_for(interval_s: float) -> float:
    """How long a run stays "running" without a heartbeat: three beats (30 s by default)."""
    return max(1.0, 3.0 * interval_s)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), None when unknown or gone."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    try:  # the command name (field 2) may contain spaces and parentheses: split after the last ')'
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


_identity: dict[str, Any] | None = None


def process_owner() -> dict[str, Any]:
    """This process's identity, as stored with the runs it opens (read once per process: /proc
    reads cost up to a millisecond on a busy machine)."""
    global _identity
    if _identity is None or _identity["pid"] != os.getpid():
        pid = os.getpid()
        _identity = {"host": socket.gethostname(), "boot_id": _read("/proc/sys/kernel/random/boot_id"),
                     "pidns": _pid_namespace(), "pid": pid, "start": _start_ticks(pid)}
    return dict(_identity)


def _forget_after_fork() -> None:
    global _identity
    _identity = None  # a new pid and start time


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def same_machine(owner: dict[str, Any] | None) -> bool:
    """Whether ``owner`` ran on this machine since its last boot, in this pid namespace."""
    if not owner or owner.get("boot_id") is None:
        return False
    here = process_owner()
    return owner.get("host") == here["host"] and owner.get("boot_id") == here["boot_id"] and owner.get("pidns") == here["pidns"]


def owner_alive(owner: dict[str, Any] | None) -> bool | None:
    """True/False for a process of this machine; None when it cannot be told from here."""
    if not owner:
        return None
    here = process_owner()
    if owner.get("host") != here["host"] or owner.get("pidns") != here["pidns"]:
        return None
    if owner.get("boot_id") is not None and here["boot_id"] is not None and owner.get("boot_id") != here["boot_id"]:
        return False  # the machine rebooted since: that process is gone
    if owner.get("boot_id") is None:
        return None
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return None
    started = _start_ticks(pid)
    if started is None:
        if os.path.isdir("/proc/self"):
            return False  # no such process
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if owner.get("start") is not None and started != owner["start"]:
        return False  # the pid was reused by another process
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A process that exited and was not reaped yet is dead for our purposes."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return False
    try:
        return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except IndexError:
        return False
