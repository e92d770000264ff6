#!/usr/bin/env python3
"""Rebuild (or check) the browser libraries shipped in modelbox_autolog/ui/static/vendor.

They come from npm, pinned by modelbox_autolog/ui/vendor/package-lock.json (versions and
sha512 integrity of every tarball); `npm ci` installs exactly that into a temporary folder and
the files listed in FILES are copied out. manifest.json records each shipped file's sha256,
the package version and the lockfile integrity, so the test suite can prove, without network,
that the shipped files are the ones this lockfile names; `--check` rebuilds from npm and
compares byte for byte. Users never need Node: the built files are in the Python package.

    python scripts/vendor-ui.py          # update static/vendor from the lockfile
    python scripts/vendor-ui.py --check  # rebuild in a temp folder; exit 1 if anything differs
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENDOR = os.path.join(ROOT, "modelbox_autolog", "ui", "vendor")
STATIC = os.path.join(ROOT, "modelbox_autolog", "ui", "static", "vendor")
# shipped name -> (npm package, path inside it); license texts travel with the code
FILES = {
    "echarts.min.js": ("echarts", "dist/echarts.min.js"),
    "echarts.LICENSE.txt": ("echarts", "LICENSE"),
    "echarts.NOTICE.txt": ("echarts", "NOTICE"),
}


def sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def build(into: str) -> dict:
    """npm ci in a temp copy of the vendor folder; the FILES copied into ``into``; the manifest."""
    with open(os.path.join(VENDOR, "package-lock.json")) as handle:
        lock = json.load(handle)
    with tempfile.TemporaryDirectory(prefix="modelbox-vendor-") as work:
        for name in ("package.json", "package-lock.json"):
            shutil.copy(os.path.join(VENDOR, name), work)
        subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=work, check=True,
                       stdout=subprocess.DEVNULL)
        manifest = {"generated_by": "scripts/vendor-ui.py", "files": {}}
        os.makedirs(into, exist_ok=True)
        for shipped, (package, inner) in FILES.items():
            entry = lock["packages"][f"node_modules/{package}"]
            shutil.copy(os.path.join(work, "node_modules", package, inner), os.path.join(into, shipped))
            manifest["files"][shipped] = {"package": package, "version": entry["version"], "integrity": entry["integrity"],
                                          "path": inner, "sha256": sha256(os.path.join(into, shipped))}
    return manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="rebuild in a temp folder and compare with what is shipped")
    args = parser.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as out:
            manifest = build(out)
            differ = [name for name in FILES if sha256(os.path.join(out, name)) != sha256(os.path.join(STATIC, name))]
        with open(os.path.join(VENDOR, "manifest.json")) as handle:
            if json.load(handle)["files"] != manifest["files"]:
                differ.append("manifest.json")
        if differ:
            print("differs from what the lockfile builds: " + ", ".join(differ), file=sys.stderr)
            return 1
        print("shipped browser libraries match the lockfile")
        return 0
    manifest = build(STATIC)
    with open(os.path.join(VENDOR, "manifest.json"), "w") as handle:
        json.dump(manifest, handle, indent=2)
        handle.write("\n")
    print(f"updated {STATIC} from the lockfile")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
