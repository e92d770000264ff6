"""The C++ SDK (sdk/cpp, CMake) against a real ``modelbox server``."""

from __future__ import annotations

import subprocess

import pytest

from ._build import cpp_tools
from ._contract import SdkContract
from .conftest import Tool


@pytest.fixture(scope="module")
def tool() -> Tool:
    out = cpp_tools()
    return Tool("cpp", out / "modelbox_cpp", out / "download_model")


class TestCppSdk(SdkContract):
    language = "cpp"


def test_cpp_unit_tests():
    out = cpp_tools()
    proc = subprocess.run([str(out / "modelbox_unit_tests")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "unit tests passed" in proc.stdout
