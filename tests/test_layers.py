"""The layer order README.md draws, checked on every import statement in the source tree
(module level or inside a function, under TYPE_CHECKING or not):

    transport  ->  service  ->  store
        \\            |           /
         `------>  domain  <----'

- transport (grpc.aio servicers and interceptors) imports nothing from the store;
- service imports nothing from transport;
- store imports only store and domain;
- domain imports only domain: no other layer, and no grpc, protobuf, SQLAlchemy or psycopg;
- gRPC and the protos are transport's alone; SQLAlchemy, Alembic and psycopg the store's;
- no layer imports the assembly around it (app, cli, config, demo, testing, files);
- the SDK (client/omnistock: the client and its generated messages) imports nothing from
  the server, and neither do its examples; one module aside: omnistock.client.testing runs
  a real server in the user's tests, so it imports the server's own entry for that
  (omnistock.server.testing and its ServerConfig) and says so when the server is absent.

A package of the server that is none of these (a new one) is bound only by the rows that
name what it may not be imported by; give it a row of its own when it has a place.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVER = "omnistock.server"
LAYERS = ("transport", "service", "store", "domain")
ASSEMBLY = ("app", "cli", "config", "demo", "testing", "files")
GRPC = ("grpc", "grpc_health", "grpc_reflection", "google.protobuf", "google.rpc", "omnistock.v1")
SQL = ("sqlalchemy", "alembic", "psycopg")


@dataclass(frozen=True)
class Rule:
    """Modules under ``source`` (but not under ``exempt``) may not import modules under
    any of ``forbidden``, unless under one of ``allowed`` (all dotted prefixes)."""

    source: str
    forbidden: tuple[str, ...]
    why: str
    allowed: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()

    def breaks(self, module: str, imported: str) -> bool:
        return (
            _under(module, (self.source,))
            and not _under(module, self.exempt)
            and _under(imported, self.forbidden)
            and not _under(imported, self.allowed)
        )


def _s(*names: str) -> tuple[str, ...]:
    return tuple(f"{SERVER}.{name}" for name in names)


RULES = (
    Rule(f"{SERVER}.transport", _s("store", *ASSEMBLY), "transport imports no store module"),
    Rule(f"{SERVER}.transport", SQL, "SQL is the store's"),
    Rule(f"{SERVER}.service", _s("transport", *ASSEMBLY), "service imports nothing from transport"),
    Rule(f"{SERVER}.service", GRPC + SQL, "gRPC is transport's and SQL the store's"),
    # The read model sits with the services: it reads through the store and is read by both.
    Rule(f"{SERVER}.readmodel", _s("transport", *ASSEMBLY), "the read model imports no transport"),
    Rule(f"{SERVER}.readmodel", GRPC + SQL, "gRPC is transport's and SQL the store's"),
    Rule(
        f"{SERVER}.store",
        (SERVER,),
        "store imports only store and domain",
        allowed=_s("store", "domain"),
    ),
    Rule(f"{SERVER}.store", GRPC, "gRPC is transport's"),
    Rule(f"{SERVER}.domain", (SERVER,), "domain imports only domain", allowed=_s("domain")),
    Rule(f"{SERVER}.domain", GRPC + SQL, "domain is plain Python: no gRPC, no SQL"),
    Rule(
        "omnistock.client",
        (SERVER,),
        "the SDK imports nothing from the server",
        exempt=("omnistock.client.testing",),
    ),
    Rule(
        "omnistock.client.testing",
        (SERVER,),
        "the SDK's test server imports only the server's testing entry",
        allowed=_s("testing", "config.ServerConfig"),
    ),
    Rule("omnistock.v1", (SERVER,), "the SDK imports nothing from the server"),
    Rule("examples", (SERVER,), "the SDK's examples import nothing from the server"),
)

# Where each source tree's modules are named from.
TREES = (
    (ROOT / "server", ROOT / "server" / "omnistock" / "server"),
    (ROOT / "client", ROOT / "client" / "omnistock"),
    (ROOT / "client", ROOT / "client" / "examples"),
)


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def module_name(base: Path, path: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(module: str, source: str, *, package: bool) -> list[tuple[int, str]]:
    """(line, dotted name) of everything ``source`` imports, relative imports resolved;
    ``from x import y`` gives x.y (a module or a name of x: either is under x)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def violations(trees: tuple[tuple[Path, Path], ...] = TREES) -> list[str]:
    found = []
    for base, tree in trees:
        for path in sorted(tree.rglob("*.py")):
            module = module_name(base, path)
            source = path.read_text(encoding="utf-8")
            for line, imported in imports(module, source, package=path.name == "__init__.py"):
                for rule in RULES:
                    if rule.breaks(module, imported):
                        where = path.relative_to(base.parent)
                        found.append(f"{where}:{line} imports {imported}: {rule.why}")
    return sorted(set(found))


def test_every_import_runs_the_way_the_layers_do() -> None:
    found = violations()
    assert not found, "imports that run the wrong way:\n" + "\n".join(found)


def test_the_check_sees_every_layer_and_the_sdk() -> None:
    """The rules above name real modules, so the check cannot pass by finding nothing."""
    seen = {module_name(base, path) for base, tree in TREES for path in tree.rglob("*.py")}
    for prefix in [f"{SERVER}.{layer}" for layer in LAYERS] + ["omnistock.client", "examples"]:
        assert any(_under(m, (prefix,)) for m in seen), prefix


@pytest.mark.parametrize(
    ("path", "source", "why"),
    [
        ("server/omnistock/server/transport/x.py", "from omnistock.server.store import keys",
         "transport imports no store module"),
        ("server/omnistock/server/transport/x.py", "import omnistock.server.store.keys",
         "transport imports no store module"),
        ("server/omnistock/server/transport/x.py", "def f():\n    from ..store.keys import K",
         "transport imports no store module"),
        ("server/omnistock/server/service/x.py", "from omnistock.server.transport.auth import a",
         "service imports nothing from transport"),
        ("server/omnistock/server/service/x.py", "import psycopg",
         "gRPC is transport's and SQL the store's"),
        ("server/omnistock/server/store/x.py", "from omnistock.server.service import changes",
         "store imports only store and domain"),
        ("server/omnistock/server/domain/x.py", "from sqlalchemy import select",
         "domain is plain Python: no gRPC, no SQL"),
        ("server/omnistock/server/domain/x.py", "from omnistock.server import app",
         "domain imports only domain"),
        ("client/omnistock/client/x.py", "from omnistock.server.domain import stock",
         "the SDK imports nothing from the server"),
        ("client/omnistock/client/testing.py", "from omnistock.server.app import OmnistockServer",
         "the SDK's test server imports only the server's testing entry"),
    ],
)  # fmt: skip
def test_an_import_that_runs_the_wrong_way_is_reported(
    tmp_path: Path, path: str, source: str, why: str
) -> None:
    file = tmp_path / path
    file.parent.mkdir(parents=True)
    file.write_text(f"from __future__ import annotations\n{source}\n")
    trees = ((tmp_path / "server", tmp_path / "server" / "omnistock" / "server"),
             (tmp_path / "client", tmp_path / "client" / "omnistock"))  # fmt: skip
    found = violations(trees)
    assert found and all(f.endswith(why) for f in found), found
    assert found[0].startswith(f"{path}:")
