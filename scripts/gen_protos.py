"""Regenerate the Python code for protos/ into client/omnistock/v1/.

Messages (_pb2), gRPC stubs (_pb2_grpc) and their typed stubs (.pyi, by
mypy-protobuf); then scripts/gen_client.py makes both SDK clients and docs/sdk.md's
method reference from the same protos. The output is committed; tests/test_generated_code.py fails
when a fresh generation differs from it.

    python scripts/gen_protos.py            # write client/omnistock/v1/
    python scripts/gen_protos.py --out DIR  # write elsewhere (used by the test)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE = "omnistock/v1"
DEFAULT_OUT = ROOT / "client"


def well_known_protos() -> str:
    """The root holding google/protobuf/*.proto, from grpcio-tools."""
    import importlib.resources as resources

    return str(resources.files("grpc_tools") / "_proto")


def googleapis_protos() -> str:
    """The root holding google/api/*.proto, from the googleapis-common-protos package
    (installed with the SDK): nothing is fetched."""
    import google.api.client_pb2 as client_pb2

    return str(Path(client_pb2.__file__).resolve().parent.parent.parent)


def generate(out_root: Path) -> list[Path]:
    """Generate into out_root/omnistock/v1 and return the files written."""
    from grpc_tools import protoc

    well_known = well_known_protos()
    bin_dir = Path(sys.executable).parent
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE).glob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            f"--proto_path={PROTO_ROOT}",
            f"--proto_path={well_known}",
            f"--proto_path={googleapis_protos()}",
            f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            f"--mypy_out={tmp}",
            f"--mypy_grpc_out={tmp}",
            *protos,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        target = out_root / PACKAGE
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(Path(tmp) / PACKAGE, target)
    (target / "__init__.py").write_text(
        '"""Generated from protos/omnistock/v1 by scripts/gen_protos.py. Do not edit."""\n'
    )
    (target / "py.typed").write_text("")
    return sorted(p for p in target.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="root to write omnistock/v1 under"
    )
    args = parser.parse_args()
    for path in generate(args.out):
        print(path.relative_to(args.out))
    if args.out == DEFAULT_OUT:  # the clients and their docs are made from the same protos
        import gen_client

        gen_client.main([])


if __name__ == "__main__":
    main()
