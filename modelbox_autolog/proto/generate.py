"""Regenerate the Python code of ``modelbox.v1`` from its ``.proto`` files (needs grpcio-tools).

protoc writes absolute imports (``from modelbox.v1 import records_pb2``) that would need this
folder on ``sys.path``; they are rewritten to point inside the package instead, so other
languages keep the short ``modelbox/v1/*.proto`` import paths.

    python -m modelbox_autolog.proto.generate [--check]
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "modelbox_autolog.proto"
SOURCES = os.path.join("modelbox", "v1")


def _protos() -> list[str]:
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, SOURCES, "*.proto")))


def _fix_imports(text: str) -> str:
    return re.sub(r"^from modelbox\.v1 import ", f"from {PACKAGE}.modelbox.v1 import ", text, flags=re.MULTILINE)


def generate(out_dir: str) -> list[str]:
    """Run protoc into ``out_dir`` (same layout as this folder); return the written files."""
    from grpc_tools import protoc

    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    args = ["grpc_tools.protoc", f"-I{HERE}", f"-I{include}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}"]
    args += _protos()
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written = []
    for path in glob.glob(os.path.join(out_dir, SOURCES, "*_pb2*.py*")):
        with open(path, encoding="utf-8") as handle:
            text = _fix_imports(handle.read())
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        written.append(os.path.relpath(path, out_dir))
    return sorted(written)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed code is out of date")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        files = generate(tmp)
        stale = []
        for rel in files:
            target = os.path.join(HERE, rel)
            with open(os.path.join(tmp, rel), encoding="utf-8") as new:
                fresh = new.read()
            current = open(target, encoding="utf-8").read() if os.path.exists(target) else None
            if current != fresh:
                stale.append(rel)
                if not args.check:
                    shutil.copyfile(os.path.join(tmp, rel), target)
    for folder in ("modelbox", os.path.join("modelbox", "v1")):
        init = os.path.join(HERE, folder, "__init__.py")
        if not os.path.exists(init) and not args.check:
            open(init, "w").close()
    if args.check and stale:
        print("out of date: " + ", ".join(stale) + " (run: python -m modelbox_autolog.proto.generate)", file=sys.stderr)
        return 1
    print(("regenerated: " + ", ".join(stale)) if stale else "generated code is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
