"""Both clients and docs/sdk.md's method reference are what scripts/gen_client.py makes
of the protos and protos/omnistock/v1/sdk.toml, and the sync client is the async one
made synchronous, so the two cannot drift."""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent.parent


def _generator() -> ModuleType:
    sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location("gen_client", ROOT / "scripts" / "gen_client.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_client"] = module
    spec.loader.exec_module(module)
    return module


def test_committed_clients_and_docs_match_a_fresh_generation() -> None:
    for relative, content in _generator().render().items():
        assert (ROOT / relative).read_text() == content, (
            f"{relative} is stale: run python scripts/gen_client.py"
        )


def test_sync_client_is_the_async_client_made_synchronous() -> None:
    generator = _generator()
    async_source = (ROOT / "client/omnistock/client/_async_client.py").read_text()
    sync_source = (ROOT / "client/omnistock/client/_client.py").read_text()
    body = lambda text: text[text.index("\nclass ") :]  # noqa: E731
    assert body(sync_source) == generator.unasync(body(async_source))


def test_generated_clients_carry_no_type_ignore() -> None:
    for name in ("_client.py", "_async_client.py"):
        assert "type: ignore" not in (ROOT / "client/omnistock/client" / name).read_text()


TOY = """
  // Says whether a location answers, for the toy test.
  rpc PingLocation(PingLocationRequest) returns (PingLocationResponse) {
    option (google.api.method_signature) = "location_id";
  }
"""
TOY_MESSAGES = """
message PingLocationRequest {
  // The location to ping.
  string location_id = 1;
}

message PingLocationResponse {
  bool alive = 1;
}
"""


def test_a_new_rpc_gets_a_method_docstring_and_docs_entry_in_both_clients(
    tmp_path: Path,
) -> None:
    for part in ("protos", "docs", "client/omnistock/client"):
        shutil.copytree(ROOT / part, tmp_path / part)
    proto = tmp_path / "protos/omnistock/v1/location.proto"
    text = proto.read_text()
    text = text.replace("service LocationService {\n", "service LocationService {" + TOY, 1)
    proto.write_text(text + TOY_MESSAGES)

    out = {str(k): v for k, v in _generator().render(tmp_path).items()}
    for name in ("_client.py", "_async_client.py"):
        source = out[f"client/omnistock/client/{name}"]
        assert re.search(r"def ping_location\(\n        self,\n        location_id: str", source)
        assert "Says whether a location answers, for the toy test." in source
        assert "location_id: The location to ping." in source
    assert "async def ping_location(" in out["client/omnistock/client/_async_client.py"]
    docs = out["docs/sdk.md"]
    assert "#### `ping_location(location_id) -> PingLocationResponse`" in docs
    assert "Says whether a location answers, for the toy test." in docs
