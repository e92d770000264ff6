"""Builds the Go and C++ SDKs (and their tools) for the tests and benchmarks, cached under build/sdk.

A second build only recompiles what changed (Go's build cache, CMake's dependency tracking).
A missing toolchain skips the tests with one line, or fails them under ``CI=true``.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests._components import missing, require_binary

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("MODELBOX_SDK_BUILD") or ROOT / "build" / "sdk")
GO_PACKAGES = "apt-get install golang-go golang-google-grpc-dev golang-google-protobuf-dev protoc-gen-go protoc-gen-go-grpc protobuf-compiler"
CPP_PACKAGES = "apt-get install cmake g++ libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler"
GOCODE = Path("/usr/share/gocode/src")
BUILD_TIMEOUT_S = 900


@contextmanager
def _locked(name: str):
    """One build at a time per build folder (two test runs may share it)."""
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _run(args: list[str], what: str) -> None:
    env = {**os.environ, "MODELBOX_SDK_BUILD": str(BUILD)}
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    if proc.returncode != 0:
        pytest.fail(f"{what} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}", pytrace=False)


def require_go() -> None:
    require_binary("go", GO_PACKAGES)
    if not (GOCODE / "google.golang.org" / "grpc" / "go.mod").exists():
        missing("gRPC-Go sources (golang-google-grpc-dev)", GO_PACKAGES)
    if not (GOCODE / "google.golang.org" / "protobuf" / "go.mod").exists():
        missing("protobuf-go sources (golang-google-protobuf-dev)", GO_PACKAGES)


def go_tools() -> Path:
    """Build the Go SDK's tools; the folder holding ``modelbox-go`` and ``download-model``."""
    require_go()
    with _locked("go"):
        _run(["bash", "sdk/go/build.sh", "build"], "building the Go SDK")
    return BUILD / "go" / "bin"


def require_cpp() -> None:
    for tool in ("cmake", "c++", "protoc", "grpc_cpp_plugin"):
        require_binary(tool, CPP_PACKAGES)
    if not Path("/usr/include/grpcpp/grpcpp.h").exists():
        missing("gRPC C++ headers (libgrpc++-dev)", CPP_PACKAGES)


def cpp_tools() -> Path:
    """Build the C++ SDK with CMake; the folder holding ``modelbox_cpp`` and ``download_model``."""
    require_cpp()
    out = BUILD / "cpp"
    with _locked("cpp"):
        if not (out / "CMakeCache.txt").exists():
            _run(["cmake", "-S", "sdk/cpp", "-B", str(out), "-DCMAKE_BUILD_TYPE=Release"], "configuring the C++ SDK")
        _run(["cmake", "--build", str(out), "--parallel", "2"], "building the C++ SDK")
    return out
