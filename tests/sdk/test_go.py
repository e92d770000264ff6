"""The Go SDK (sdk/go) against a real ``modelbox server``: built offline from Debian's Go packages."""

from __future__ import annotations

import subprocess

import pytest

from tests._components import require_binary

from ._build import BUILD_TIMEOUT_S, GO_PACKAGES, ROOT, go_tools, require_go
from ._contract import SdkContract
from .conftest import Tool


@pytest.fixture(scope="module")
def tool() -> Tool:
    bin_dir = go_tools()
    return Tool("go", bin_dir / "modelbox-go", bin_dir / "download-model")


class TestGoSdk(SdkContract):
    language = "go"


def test_go_unit_tests_and_formatting():
    require_go()
    go_tools()  # shares the build cache
    proc = subprocess.run(["bash", "sdk/go/build.sh", "test"], cwd=ROOT, capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok  \tmodelbox.dev/sdk/go/modelbox" in proc.stdout


def test_generated_go_code_matches_the_proto():
    for plugin in ("protoc", "protoc-gen-go", "protoc-gen-go-grpc"):
        require_binary(plugin, GO_PACKAGES)
    proc = subprocess.run(["bash", "sdk/go/build.sh", "check"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{proc.stderr} (regenerate with: make sdk-proto)"
