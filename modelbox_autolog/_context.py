"""What a run records about where it ran: python, platform, packages, git, argv; and the rank."""

from __future__ import annotations

import os
import sys
import time
from functools import lru_cache
from typing import Any


def global_rank() -> int:
    """The process's global rank in distributed training (0 when not distributed)."""
    for name in ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        raw = os.environ.get(name)
        if raw and raw.strip().lstrip("-").isdigit():
            return int(raw)
    dist = sys.modules.get("torch.distributed")  # only if the user already imported it
    if dist is not None:
        try:
            if dist.is_available() and dist.is_initialized():
                return int(dist.get_rank())
        except Exception:
            pass
    return 0


def world_size() -> int:
    raw = os.environ.get("WORLD_SIZE", "")
    return int(raw) if raw.isdigit() else 1


def _git(args: list[str], cwd: str) -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_info(path: str | None = None) -> dict[str, Any]:
    """Commit, dirty flag, branch and remote of the repository at ``path`` (uncached).

    Two git commands (``status --porcelain=v2 --branch`` gives commit, branch and dirtiness at
    once): each costs a process start, which a short script's exit would wait for.
    """
    cwd = path or os.getcwd()
    status = _git(["status", "--porcelain=v2", "--branch", "--untracked-files=no"], cwd)
    if status is None:
        return {}
    headers: dict[str, str] = {}
    dirty = False
    for line in status.splitlines():
        if line.startswith("# "):
            key, _, value = line[2:].partition(" ")
            headers[key] = value.strip()
        elif line.strip():
            dirty = True
    commit = headers.get("branch.oid", "")
    if not commit or commit.startswith("("):  # "(initial)": a repository without commits
        return {}
    info: dict[str, Any] = {"commit": commit, "dirty": dirty}
    branch = headers.get("branch.head")
    if branch:
        info["branch"] = "HEAD" if branch == "(detached)" else branch
    remote = _git(["config", "--get", "remote.origin.url"], cwd)
    if remote:
        info["remote"] = remote
    return info


@lru_cache(maxsize=8)
def _git_info_once(path: str) -> dict[str, Any]:
    # Once per process: git commands per run would cost a few ms of CPU each time.
    return git_info(path)


@lru_cache(maxsize=1)
def installed_packages() -> dict[str, str]:
    """name -> version of every installed distribution.

    Read from folder names (``NAME-VERSION.dist-info``) and, for ``.egg-info`` folders, the
    two header lines of PKG-INFO: a directory listing, where parsing every METADATA file
    costs ~0.3 s of CPU in a large environment.
    """
    packages: dict[str, str] = {}
    for entry in sys.path:
        folder = entry or "."
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                dist_name, _, version = name[: -len(".dist-info")].partition("-")
            elif name.endswith(".egg-info"):
                dist_name, version = _egg_info(os.path.join(folder, name))
            else:
                continue
            if dist_name and version:
                packages.setdefault(dist_name.lower().replace("_", "-"), version)
    return dict(sorted(packages.items()))


def _egg_info(path: str) -> tuple[str, str]:
    info = os.path.join(path, "PKG-INFO") if os.path.isdir(path) else path
    name = version = ""
    try:
        with open(info, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("Name:"):
                    name = line[5:].strip()
                elif line.startswith("Version:"):
                    version = line[8:].strip()
                if (name and version) or not line.strip():
                    break
    except OSError:
        pass
    return name, version


def script_dir() -> str:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return os.path.dirname(os.path.abspath(path)) if path else os.getcwd()


def capture_environment() -> dict[str, Any]:
    """Slow-ish the first time (lists packages, runs git): call it on the exporter thread.

    What cannot change during a process is computed once; the rank is read each time (a
    process joins its distributed group after start-up).
    """
    return {**_process_environment(), "rank": global_rank(), "world_size": world_size()}


@lru_cache(maxsize=1)
def _process_environment() -> dict[str, Any]:
    import platform

    started = time.perf_counter()
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "hostname": platform.node(),
        "cpu_count": os.cpu_count(),
        "pid": os.getpid(),
        "argv": list(sys.argv),
        "cwd": os.getcwd(),
        "executable": sys.executable,
        "packages": installed_packages(),
    }
    git = _git_info_once(script_dir())
    if git:
        env["git"] = git
    env["capture_s"] = round(time.perf_counter() - started, 4)
    return env
