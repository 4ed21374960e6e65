"""The committed generated code is exactly what scripts/gen_protos.py makes."""

from __future__ import annotations

import filecmp
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "client" / "omnistock" / "v1"


def _load_generator() -> object:
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_protos"] = module
    spec.loader.exec_module(module)
    return module


def test_committed_generated_code_matches_a_fresh_generation(tmp_path: Path) -> None:
    generator = _load_generator()
    generator.generate(tmp_path)  # type: ignore[attr-defined]
    fresh = tmp_path / "omnistock" / "v1"
    names = lambda d: sorted(p.name for p in d.iterdir() if p.is_file())  # noqa: E731
    assert names(fresh) == names(COMMITTED), "run: python scripts/gen_protos.py"
    _, mismatch, errors = filecmp.cmpfiles(fresh, COMMITTED, names(fresh), shallow=False)
    assert mismatch == [] and errors == [], (
        f"stale generated code {mismatch}: run python scripts/gen_protos.py"
    )


def test_every_proto_has_generated_modules() -> None:
    protos = sorted(p.stem for p in (ROOT / "protos" / "omnistock" / "v1").glob("*.proto"))
    for stem in protos:
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi"):
            assert (COMMITTED / f"{stem}{suffix}").is_file()
