"""The browser libraries shipped in the package are exactly what the npm lockfile names."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

UI = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "modelbox_autolog", "ui")


def test_shipped_files_match_the_manifest_and_the_lockfile():
    with open(os.path.join(UI, "vendor", "manifest.json")) as handle:
        manifest = json.load(handle)
    with open(os.path.join(UI, "vendor", "package-lock.json")) as handle:
        lock = json.load(handle)
    with open(os.path.join(UI, "vendor", "package.json")) as handle:
        wanted = json.load(handle)["dependencies"]
    assert manifest["files"], "nothing vendored"
    for name, entry in manifest["files"].items():
        locked = lock["packages"][f"node_modules/{entry['package']}"]
        assert (entry["version"], entry["integrity"]) == (locked["version"], locked["integrity"]), name
        assert wanted[entry["package"]] == locked["version"]
        with open(os.path.join(UI, "static", "vendor", name), "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == entry["sha256"], f"{name} differs from the manifest"
    assert set(os.listdir(os.path.join(UI, "static", "vendor"))) == set(manifest["files"])


def test_a_rebuild_from_npm_gives_the_same_bytes():
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: the rebuild check needs it (the manifest check above still ran)")
    script = os.path.join(UI, "..", "..", "scripts", "vendor-ui.py")
    result = subprocess.run([sys.executable, script, "--check"], capture_output=True, text=True, timeout=300)
    if result.returncode != 0 and ("ENOTFOUND" in result.stderr or "network" in result.stderr.lower()):
        pytest.skip("the npm registry cannot be reached")
    assert result.returncode == 0, result.stderr
