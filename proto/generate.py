"""Generate the Python gRPC code from proto/ into sidecar/rpc/gen/ (checked in).

Policy: the generated code is committed, and tests/rpc/test_generated.py regenerates it into a
temporary folder and fails if it differs, so it can never go stale. Run after editing a
.proto file:  .venv/bin/python proto/generate.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
TARGET = ROOT / "sidecar" / "rpc" / "gen"
FILES = ["creditgate/v1/creditgate.proto"]
PACKAGE = "sidecar.rpc.gen"


def generate(target: Path = TARGET) -> list[Path]:
    """Write the generated modules under ``target``; return the files written."""
    include = str(Path(protoc.__file__).parent / "_proto")
    for name in FILES:
        code = protoc.main([
            "grpc_tools.protoc", f"-I{PROTO}", f"-I{include}", f"--python_out={target}",
            f"--pyi_out={target}", f"--grpc_python_out={target}", str(PROTO / name),
        ])  # fmt: skip
        if code != 0:
            raise RuntimeError(f"protoc failed on {name} (exit {code})")
    written = []
    for path in sorted(p for p in target.rglob("*") if p.suffix in (".py", ".pyi")):
        if path.name.endswith("_grpc.py"):
            text = path.read_text()
            # protoc writes imports relative to the proto root; make them package imports.
            text = text.replace("from creditgate.v1 import", f"from {PACKAGE}.creditgate.v1 import")
            path.write_text(text)
        written.append(path)
    for path in written:
        folder = path.parent
        while folder != target.parent:
            (folder / "__init__.py").touch()
            folder = folder.parent
    return sorted(p for p in target.rglob("*") if p.suffix in (".py", ".pyi"))


if __name__ == "__main__":
    for path in generate():
        print(path.relative_to(ROOT), file=sys.stderr)
