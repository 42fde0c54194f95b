"""Generate the Python stubs for protos/tessera/v1 into shared/gen.

protoc writes absolute imports (``from tessera.v1 import common_pb2``); they are
rewritten to ``shared.gen.tessera.v1`` so the stubs live inside the ``shared``
package and need no sys.path changes. ``python -m shared.ops.protogen --check``
exits non-zero when the committed stubs differ from a fresh generation.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "protos"
GEN_DIR = ROOT / "shared" / "gen"
_IMPORT = re.compile(r"^from tessera\.v1 import ", re.MULTILINE)


def proto_files() -> list[Path]:
    return sorted((PROTO_DIR / "tessera" / "v1").glob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Run protoc into out_dir and return the files written (relative to out_dir)."""
    import grpc_tools
    from grpc_tools import protoc

    include = str(Path(grpc_tools.__file__).parent / "_proto")
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p.relative_to(PROTO_DIR)) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protogen: protoc failed")
    written = []
    for path in sorted(out_dir.rglob("*.py*")):
        if path.suffix not in (".py", ".pyi"):
            continue
        path.write_text(_IMPORT.sub("from shared.gen.tessera.v1 import ", path.read_text()))
        written.append(path.relative_to(out_dir))
    for pkg in (out_dir / "tessera", out_dir / "tessera" / "v1"):
        init = pkg / "__init__.py"
        init.write_text("")
        written.append(init.relative_to(out_dir))
    init = out_dir / "__init__.py"
    init.write_text('"""Generated gRPC stubs: run `make protos`, never edit."""\n')
    written.append(init.relative_to(out_dir))
    return sorted(set(written))


def stale_files() -> list[str]:
    """Files whose committed content differs from what protoc generates now."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        current = {p.relative_to(GEN_DIR) for p in GEN_DIR.rglob("*.py*") if "__pycache__" not in p.parts}
        stale = [str(p) for p in fresh if not (GEN_DIR / p).exists()
                 or (GEN_DIR / p).read_bytes() != (Path(tmp) / p).read_bytes()]
        stale += [str(p) for p in current - set(fresh)]
    return sorted(stale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed stubs are stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        if stale:
            print("protogen: stale generated stubs (run `make protos`): " + ", ".join(stale), file=sys.stderr)
            return 1
        print("protogen: stubs are up to date")
        return 0
    shutil.rmtree(GEN_DIR, ignore_errors=True)
    for path in generate(GEN_DIR):
        print(f"protogen: wrote shared/gen/{path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
