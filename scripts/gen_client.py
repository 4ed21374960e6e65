"""Make both SDK clients' per-method surface, and docs/sdk.md's method reference, from
the contract: the protos (RPCs, comments, ``google.api.method_signature``) and the SDK
settings beside them (protos/omnistock/v1/sdk.toml: deadlines, retries, pagers,
argument adapters).

The async client is written from one template per kind of RPC; the sync client is made
from that text by unasync (``async def`` -> ``def``, ``await x`` -> ``x``, ``AsyncX`` ->
``X``), as httpcore does, so the two cannot drift. The output is committed;
tests/client/test_generated_client.py fails when a fresh generation differs.

    python scripts/gen_client.py          # write the clients and docs/sdk.md's reference
    python scripts/gen_client.py --check  # exit 1 if what is committed is stale
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import tempfile
import textwrap
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_protos

ROOT = gen_protos.ROOT
PROTO_ROOT = gen_protos.PROTO_ROOT
CONFIG = PROTO_ROOT / "omnistock" / "v1" / "sdk.toml"
SDK = ROOT / "client" / "omnistock" / "client"
ASYNC_CLIENT = SDK / "_async_client.py"
SYNC_CLIENT = SDK / "_client.py"
DOCS = ROOT / "docs" / "sdk.md"
DOCS_BEGIN = "<!-- BEGIN METHOD REFERENCE: made by scripts/gen_client.py, do not edit -->"
DOCS_END = "<!-- END METHOD REFERENCE -->"
LINE = 99

SCALARS = {
    "TYPE_STRING": "str", "TYPE_BYTES": "bytes", "TYPE_BOOL": "bool",
    "TYPE_DOUBLE": "float", "TYPE_FLOAT": "float",
    "TYPE_INT32": "int", "TYPE_INT64": "int", "TYPE_UINT32": "int", "TYPE_UINT64": "int",
    "TYPE_SINT32": "int", "TYPE_SINT64": "int", "TYPE_FIXED32": "int", "TYPE_FIXED64": "int",
    "TYPE_SFIXED32": "int", "TYPE_SFIXED64": "int",
}  # fmt: skip
WELL_KNOWN = {
    ".google.protobuf.Timestamp": "timestamp_pb2",
    ".google.protobuf.Duration": "duration_pb2",
}
ABC_NAMES = {"AsyncIterator", "Iterable", "Iterator", "Mapping", "Sequence"}
DATETIME_NAMES = {"datetime", "timedelta"}
REQUESTS_NAMES = {"Cart", "DeltaBatch", "IncomingLines", "IncomingUpdates"}
BUILTINS = {"str", "int", "float", "bool", "bytes", "tuple", "list", "None", "True", "False"}


# The contract, read from protoc's descriptors


@dataclass
class Param:
    name: str
    field: str  # dotted path in the request, or "" for an argument that is no field
    type: str
    default: str | None  # None: required
    positional: bool
    doc: str
    kind: str = ""  # for fields set without a builder: "repeated", "message" or "scalar"
    pass_to: str = ""  # "watch": given to the watch class rather than the builder


@dataclass
class Method:
    service: str
    rpc: str
    name: str
    module: str  # the pb2 module of the request and response
    request: str
    response: str
    client_streaming: bool
    server_streaming: bool
    comment: str
    params: list[Param]
    settings: dict[str, Any]
    result_type: str = ""
    item_type: str = ""
    result_repeated: bool = False


@dataclass
class Contract:
    methods: list[Method] = field(default_factory=list)
    services: list[tuple[str, str, str]] = field(default_factory=list)  # name, module, comment
    modules: set[str] = field(default_factory=set)


def load_descriptors(proto_root: Path = PROTO_ROOT) -> Any:
    """The FileDescriptorSet of protos/omnistock/v1, with comments and imports."""
    import google.api.client_pb2  # noqa: F401  (registers google.api.method_signature)
    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc

    protos = sorted(
        str(p.relative_to(proto_root)) for p in (proto_root / gen_protos.PACKAGE).glob("*.proto")
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "contract.pb"
        args = [
            "grpc_tools.protoc",
            f"--proto_path={proto_root}",
            f"--proto_path={gen_protos.well_known_protos()}",
            f"--proto_path={gen_protos.googleapis_protos()}",
            f"--descriptor_set_out={out}",
            "--include_source_info",
            "--include_imports",
            *protos,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        descriptors = descriptor_pb2.FileDescriptorSet()
        descriptors.ParseFromString(out.read_bytes())
    return descriptors


def _comments(file: Any) -> dict[tuple[int, ...], str]:
    found = {}
    for location in file.source_code_info.location:
        text = location.leading_comments.strip()
        if text:
            found[tuple(location.path)] = " ".join(line.strip() for line in text.splitlines())
    return found


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def read_contract(descriptors: Any, config: dict[str, Any]) -> Contract:
    from google.api import client_pb2
    from google.protobuf import descriptor_pb2

    field_type = descriptor_pb2.FieldDescriptorProto
    messages: dict[str, tuple[str, Any, dict[int, str]]] = {}  # full name -> module, msg, docs
    enums: dict[str, str] = {}
    ours = [f for f in descriptors.file if f.name.startswith(gen_protos.PACKAGE + "/")]
    for file in ours:
        module = Path(file.name).stem + "_pb2"
        comments = _comments(file)
        for index, message in enumerate(file.message_type):
            docs = {
                number: comments.get((4, index, 2, number), "")
                for number in range(len(message.field))
            }
            messages[f".{file.package}.{message.name}"] = (module, message, docs)
        for enum in file.enum_type:
            enums[f".{file.package}.{enum.name}"] = f"{module}.{enum.name}.ValueType"

    contract = Contract()

    def resolve(path: str, message_name: str) -> tuple[Any, str]:
        _, message, docs = messages[message_name]
        head, _, rest = path.partition(".")
        for number, candidate in enumerate(message.field):
            if candidate.name == head:
                if rest:
                    return resolve(rest, candidate.type_name)
                return candidate, docs[number]
        raise SystemExit(f"{message_name} has no field {path!r}")

    def python_type(descriptor: Any) -> tuple[str, str]:
        """A field's Python type and how a request takes it."""
        if descriptor.type == field_type.TYPE_MESSAGE:
            name = descriptor.type_name
            if name in WELL_KNOWN:
                contract.modules.add(WELL_KNOWN[name])
                base = f"{WELL_KNOWN[name]}.{name.rsplit('.', 1)[1]}"
            else:
                module = messages[name][0]
                contract.modules.add(module)
                base = f"{module}.{name.rsplit('.', 1)[1]}"
            kind = "message"
        elif descriptor.type == field_type.TYPE_ENUM:
            base, kind = enums[descriptor.type_name], "scalar"
            contract.modules.add(base.split(".")[0])
        else:
            base, kind = SCALARS[field_type.Type.Name(descriptor.type)], "scalar"
        if descriptor.label == field_type.LABEL_REPEATED:
            return f"Iterable[{base}]", "repeated"
        return base, kind

    for file in ours:
        module = Path(file.name).stem + "_pb2"
        comments = _comments(file)
        for s_index, service in enumerate(file.service):
            contract.services.append((service.name, module, comments.get((6, s_index), "")))
            for m_index, rpc in enumerate(service.method):
                base_settings = dict(config.get(rpc.name, {}))
                # `also`: further SDK methods on the same RPC, each with its own name,
                # builder, result and params (say, a channel's answer beside locations').
                for settings in [
                    {k: v for k, v in base_settings.items() if k != "also"},
                    *(
                        {**base_settings, "params": {}, **extra}
                        for extra in base_settings.get("also", [])
                    ),
                ]:
                    settings.pop("also", None)
                    signature = [
                        path
                        for entry in rpc.options.Extensions[client_pb2.method_signature]
                        for path in entry.split(",")
                        if path
                    ]
                    signature = list(settings.get("signature", signature))
                    request_name = rpc.input_type
                    configured: dict[str, dict[str, Any]] = settings.get("params", {})
                    by_field = {spec.get("field", name): name for name, spec in configured.items()}
                    names = [by_field.get(path, path.replace(".", "_")) for path in signature]
                    names += [name for name in configured if name not in names]
                    params = []
                    for name in names:
                        spec = configured.get(name, {})
                        path = spec.get("field", name)
                        if not path and not spec.get("positional"):
                            positional = name in signature
                        else:
                            positional = path in signature or bool(spec.get("positional"))
                        doc, kind, derived = spec.get("help", ""), "", "object"
                        if path:
                            descriptor, field_doc = resolve(path, request_name)
                            derived, kind = python_type(descriptor)
                            doc = doc or field_doc
                            if descriptor.proto3_optional and "default" not in spec:
                                derived = f"{derived} | None"
                                spec = {**spec, "default": "None"}
                        default = spec.get("default")
                        if default is None and not positional:
                            derived, default = f"{derived} | None", "None"
                        params.append(
                            Param(
                                name=name, field=path, type=spec.get("type", derived),
                                default=default, positional=positional, doc=doc, kind=kind,
                                pass_to=spec.get("pass_to", ""),
                            )
                        )  # fmt: skip
                    req_module, request, _ = messages[request_name]
                    res_module, response, _ = messages[rpc.output_type]
                    method = Method(
                        service=service.name, rpc=rpc.name, name=settings.get("name", snake(rpc.name)),
                        module=module, request=f"{req_module}.{request.name}",
                        response=f"{res_module}.{response.name}",
                        client_streaming=rpc.client_streaming, server_streaming=rpc.server_streaming,
                        comment=comments.get((6, s_index, 2, m_index), ""), params=params,
                        settings=settings,
                    )  # fmt: skip
                    contract.modules.update({req_module, res_module})
                    repeated_field = settings.get("pager") or settings.get("items")
                    result = settings.get("result", "")
                    if repeated_field or result:
                        descriptor, _ = resolve(repeated_field or result, rpc.output_type)
                        base, kind = python_type(descriptor)
                        method.result_repeated = kind == "repeated"
                        method.item_type = base.removeprefix("Iterable[").removesuffix("]")
                        method.result_type = (
                            f"list[{method.item_type}]" if method.result_repeated else base
                        )
                    else:
                        method.result_type = method.response
                    contract.methods.append(method)
    return contract


# The code


def docstring(method: Method, indent: str) -> str:
    parts = [method.comment or f"Calls {method.service}.{method.rpc}."]
    if method.settings.get("doc"):
        parts.append(" ".join(method.settings["doc"].split()))
    described = [p for p in method.params if p.doc]
    if described:
        parts.append("Args:")
    body = []
    for part in parts:
        if part == "Args:":
            body.append("")
            body.append("Args:")
            for param in described:
                body.extend(
                    textwrap.wrap(
                        f"{param.name}: {param.doc}",
                        LINE - len(indent) - 4,
                        initial_indent="    ",
                        subsequent_indent="        ",
                    )
                )
            continue
        if body:
            body.append("")
        body.extend(textwrap.wrap(part, LINE - len(indent) - (0 if body else 3)))
    body.append("")
    body.append(call_settings(method))
    text = "\n".join(f"{indent}{line}" if line else "" for line in body)
    return f'{indent}"""{text.lstrip()}\n{indent}"""\n'


def call_settings(method: Method) -> str:
    timeout = method.settings.get("timeout", "client")
    if method.settings.get("watch"):
        deadline = "none (a watch reconnects)"
    elif timeout == "client":
        deadline = "the client's timeout"
    elif timeout == "none":
        deadline = "none"
    else:
        deadline = f"{float(timeout):g} s"
    streaming = method.client_streaming or method.server_streaming
    retried = "yes" if method.settings.get("retry") and not streaming else "no"
    return f"Default deadline: {deadline}. Retried: {retried}."


def _default_timeout(method: Method) -> str:
    timeout = method.settings.get("timeout", "client")
    if timeout == "client":
        return "CLIENT_TIMEOUT"
    if timeout == "none":
        return "None"
    return repr(float(timeout))


def signature(method: Method) -> list[str]:
    lines = ["self,"]
    positional = [p for p in method.params if p.positional]
    keywords = [p for p in method.params if not p.positional]
    for param in positional + keywords:
        if keywords and param is keywords[0]:
            lines.append("*,")
        if param.default is None:
            lines.append(f"{param.name}: {param.type} | None = None,")
        else:
            lines.append(f"{param.name}: {param.type} = {param.default},")
    if not keywords:
        lines.append("*,")
    if method.client_streaming:
        lines.append(f"requests: Iterable[{method.request}] | None = None,")
    else:
        lines.append(f"request: {method.request} | None = None,")
    if not method.settings.get("watch"):
        lines.append("timeout: float | None = None,")
    lines.append("metadata: Metadata = (),")
    if not (method.client_streaming or method.server_streaming):
        lines.append("retry: Retry | None = None,")
    return lines


def return_type(method: Method) -> str:
    if method.settings.get("watch"):
        return f"Async{method.settings['watch']}"
    if method.settings.get("pager"):
        return f"AsyncPager[{method.response}, {method.item_type}]"
    if method.server_streaming:
        item = method.item_type if method.settings.get("items") else method.response
        return f"AsyncIterator[{item}]"
    return method.result_type


def build_request(method: Method) -> list[str]:
    """Lines that make ``request`` (or ``requests``) from the flattened arguments."""
    target = "requests" if method.client_streaming else "request"
    flattened = [p for p in method.params if p.pass_to != "watch"]
    required = [p for p in flattened if p.default is None]
    lines = []
    if not flattened:
        lines.append(f"if {target} is None:")
        lines.append(f"    {target} = {method.request}()")
        return lines
    lines.append(f"if {target} is None:")
    if required:
        names = ", ".join(p.name for p in required)
        test = " or ".join(f"{p.name} is None" for p in required)
        lines.append(f"    if {test}:")
        lines.append(f'        raise TypeError("{method.name}() needs {names}, or {target}=")')
    builder = method.settings.get("build")
    if builder:
        args = ", ".join(f"{p.name}={p.name}" for p in flattened)
        lines.append(f"    {target} = build.{builder}({args})")
    else:
        if method.client_streaming:
            raise SystemExit(f"{method.rpc}: a request stream needs a build adapter")
        lines.append(f"    {target} = {method.request}()")
        for param in flattened:
            if not param.field:
                raise SystemExit(f"{method.rpc}: {param.name} is no field: name a build adapter")
            attribute = f"{target}.{param.field}"
            if param.kind == "repeated":
                statement = f"{attribute}.extend({param.name})"
            elif param.kind == "message":
                statement = f"{attribute}.CopyFrom({param.name})"
            else:
                statement = f"{attribute} = {param.name}"
            if param.default == "None":
                lines.append(f"    if {param.name} is not None:")
                lines.append(f"        {statement}")
            else:
                lines.append(f"    {statement}")
    given = " or ".join(
        f"{p.name} is not {p.default or None}"
        if p.default in (None, "None", "True", "False")
        else f"{p.name} != {p.default}"
        for p in flattened
    )
    lines.append(f"elif {given}:")
    lines.append(f'    raise ValueError("{method.name}(): pass {target}= or its fields, not both")')
    return lines


def method_code(method: Method) -> str:
    indent = "    "
    stub = f"self._{snake(method.service)}.{method.rpc}"
    returns = return_type(method)
    settings = method.settings
    timeout = _default_timeout(method)
    is_plain = bool(settings.get("watch") or settings.get("pager"))
    head = "def" if is_plain else "async def"
    out = [f"{head} {method.name}(", *(f"    {line}" for line in signature(method))]
    out.append(f") -> {returns}:")
    body: list[str] = build_request(method)
    if settings.get("watch"):
        reconnect = next((p.name for p in method.params if p.pass_to == "watch"), None)
        body.append(f"return Async{settings['watch']}(")
        body.append(f"    {stub}, request, metadata=self._metadata(metadata),")
        body.append(f"    reconnect={reconnect or 'True'},")
        body.append(")")
    elif settings.get("pager"):
        body += [
            f"first: {method.request} = request",
            "",
            f"async def fetch(token: str) -> {method.response}:",
            f"    page = {method.request}()",
            "    page.CopyFrom(first)",
            "    page.page_token = token",
            f"    response: {method.response} = await self._unary(",
            f"        {stub},",
            "        page,",
            "        timeout=timeout,",
            "        metadata=metadata,",
            "        retry=retry,",
            f"        default_timeout={timeout},",
            f"        idempotent={bool(settings.get('retry'))},",
            "    )",
            "    return response",
            "",
            f"return AsyncPager(fetch, lambda response: response.{settings['pager']}, "
            "token=first.page_token)",
        ]
    elif method.client_streaming:
        on_error = settings.get("on_error", "cancel").upper()
        note = settings.get("note", "STREAM_NOTE")
        body.append(f"stream = RequestStream(requests, on_error=OnError.{on_error}, note={note})")
        call = "_bidi_stream" if method.server_streaming else "_client_stream"
        if method.server_streaming:
            body.append(f"async for response in self.{call}(")
        else:
            body.append(f"response: {method.response} = await self.{call}(")
        body.append(
            f"    {stub}, stream, timeout=timeout, metadata=metadata, default_timeout={timeout}"
        )
        if method.server_streaming:
            body.append("):")
            body.append("    yield response")
        else:
            body.append(")")
            body.append("return response")
    elif method.server_streaming:
        body.append("async for response in self._server_stream(")
        body.append(
            f"    {stub}, request, timeout=timeout, metadata=metadata, default_timeout={timeout}"
        )
        body.append("):")
        if settings.get("items"):
            body.append(f"    for item in response.{settings['items']}:")
            body.append("        yield item")
        else:
            body.append("    yield response")
    else:
        body += [
            f"response: {method.response} = await self._unary(",
            f"    {stub},",
            "    request,",
            "    timeout=timeout,",
            "    metadata=metadata,",
            "    retry=retry,",
            f"    default_timeout={timeout},",
            f"    idempotent={bool(settings.get('retry'))},",
            ")",
        ]
        result = settings.get("result", "")
        if not result:
            body.append("return response")
        elif method.result_repeated:
            body.append(f"return list(response.{result})")
        else:
            body.append(f"return response.{result}")
    text = "\n".join(f"{indent}{line}" if line else "" for line in out) + "\n"
    text += docstring(method, indent * 2)
    text += "\n".join(f"{indent * 2}{line}" if line else "" for line in body) + "\n"
    return text


MODULE_DOC = '''"""The asyncio client: the same surface as Client, on grpc.aio.

Generated by scripts/gen_client.py from protos/omnistock/v1 (and sdk.toml there): do not
edit. Methods are coroutines; list methods return pagers and streams async iterators.
"""
'''
CLASS_DOC = '''    """A typed omnistock client for asyncio; the options are Client's.

    Every method takes ``timeout=`` (seconds: the deadline of the whole call, retries
    included), ``metadata=`` (added to the client's own), ``retry=`` (a Retry for this
    call) and the whole request as ``request=``. Failed calls raise a subclass of
    :class:`omnistock.client.ApiError`.

    >>> async with AsyncClient("127.0.0.1:50051", api_key=key) as client:   # doctest: +SKIP
    ...     answers = await client.get_availability("ELEC-10000", ["NL-AMS-01"])
    """
'''
# unasync: what changes, beyond async/await, from the async client to the sync one.
UNASYNC = [
    (
        MODULE_DOC,
        '''"""The synchronous client.

Generated by scripts/gen_client.py from protos/omnistock/v1 (and sdk.toml there): do not
edit. Its source is the async client's: scripts/gen_client.py makes one from the other.
"""
''',
    ),
    (
        CLASS_DOC,
        '''    """A typed, synchronous omnistock client.

    Every method takes ``timeout=`` (seconds: the deadline of the whole call, retries
    included), ``metadata=`` (added to the client's own), ``retry=`` (a Retry for this
    call) and the whole request as ``request=``. Failed calls raise a subclass of
    :class:`omnistock.client.ApiError`.

    >>> with Client("127.0.0.1:50051") as client:                 # doctest: +SKIP
    ...     for a in client.get_availability("ELEC-10000", ["NL-AMS-01"]):
    ...         print(a.location_id, StockStatus(a.status).name)
    NL-AMS-01 LIMITED
    """
''',
    ),
    ("aio.Channel", "grpc.Channel"),
    ("omnistock.client._async_transport", "omnistock.client._transport"),
]


def unasync(source: str) -> str:
    for old, new in UNASYNC:
        source = source.replace(old, new)
    source = re.sub(r"\basync def\b", "def", source)
    source = re.sub(r"\basync for\b", "for", source)
    source = re.sub(r"\bawait ", "", source)
    # A loop that only yields what it iterates is ``yield from`` in a sync generator.
    source = re.sub(
        r"(?m)^(\s+)for (\w+) in ([^:]*?):\n\s+yield \2\n", r"\1yield from \3\n", source
    )
    return re.sub(r"\bAsync(?=[A-Z])", "", source)


def _sdk_type_names() -> set[str]:
    tree = ast.parse((SDK / "_types.py").read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
    return names


def _import_key(name: str) -> tuple[int, str]:
    """isort's order by type: CONSTANTS, then Classes, then functions and modules."""
    kind = 0 if name.isupper() and len(name) > 1 else 1 if name[0].isupper() else 2
    return kind, name


def _render_from(module: str, names: set[str]) -> list[str]:
    ordered = sorted(names, key=_import_key)
    line = f"from {module} import {', '.join(ordered)}"
    if len(line) <= LINE:
        return [line]
    return [f"from {module} import (", *(f"    {name}," for name in ordered), ")"]


def imports(contract: Contract, body: str, *, sync: bool) -> str:
    """The import block of the module whose code is ``body``: only what it uses."""
    code = re.sub(r'"""(?:.|\n)*?"""|"[^"\n]*"|#[^\n]*', "", body)  # names in code only
    used = set(re.findall(r"(?<![\w.])[A-Za-z_]\w*", code))
    candidates: dict[str, set[str]] = {
        "collections.abc": ABC_NAMES,
        "datetime": DATETIME_NAMES,
        "google.protobuf": set(WELL_KNOWN.values()),
        "grpc": {"aio"},
        "omnistock.client": {"_requests as build"},
        "omnistock.client._async_transport": {"AsyncTransport"},
        "omnistock.client._config": {"Retry"},
        "omnistock.client._pagers": {"AsyncPager", "Pager"},
        "omnistock.client._requests": REQUESTS_NAMES,
        "omnistock.client._streams": {"OnError", "RequestStream", "STREAM_NOTE"}
        | {m.settings["note"] for m in contract.methods if "note" in m.settings},
        "omnistock.client._transport": {"CLIENT_TIMEOUT", "Metadata", "Transport"},
        "omnistock.client._types": _sdk_type_names(),
        "omnistock.client._watch": {
            f"{prefix}{m.settings['watch']}"
            for m in contract.methods
            if "watch" in m.settings
            for prefix in ("", "Async")
        },
        "omnistock.v1": {m for m in contract.modules if m not in WELL_KNOWN.values()}
        | {f"{module}_grpc" for _, module, _ in contract.services},
    }
    if sync:
        candidates.pop("omnistock.client._async_transport")
        candidates["grpc"] = set()
    third_party = ["import grpc"] if sync and "grpc" in used else []
    standard = []
    for module, names in sorted(candidates.items()):
        wanted = {n for n in names if n.split(" as ")[-1] in used}
        if wanted:
            section = standard if module in ("collections.abc", "datetime") else third_party
            section.extend(_render_from(module, wanted))
    return "\n".join(["from __future__ import annotations", "", *standard, "", *third_party]) + "\n"


def client_module(contract: Contract, *, sync: bool) -> str:
    parts = ["class AsyncClient(AsyncTransport):\n", CLASS_DOC]
    parts.append("\n    def _bind(self, channel: aio.Channel) -> None:\n")
    for service, module, _ in contract.services:
        parts.append(f"        self._{snake(service)} = {module}_grpc.{service}Stub(channel)\n")
    for service, _, _ in contract.services:
        parts.append(f"\n    # {service}\n")
        for method in contract.methods:
            if method.service == service:
                parts.append("\n" + method_code(method))
    body = "".join(parts)
    doc = MODULE_DOC
    if sync:
        body, doc = unasync(body), unasync(doc)
    return f"{doc}\n{imports(contract, body, sync=sync)}\n\n{body}"


# The docs


def _short(type_text: str) -> str:
    return re.sub(r"\b\w+_pb2\.", "", type_text).replace(".ValueType", "")


def docs_reference(contract: Contract) -> str:
    out = [DOCS_BEGIN, ""]
    out.append(
        "Every method of `Client` and `AsyncClient` (where it is a coroutine, or returns an "
        "async iterator), made from the protos' comments and `protos/omnistock/v1/sdk.toml`. "
        "Each also takes `request=` (the whole request message; `requests=` for a request "
        "stream) instead of its arguments, `metadata=`, and, except the watch, `timeout=`; "
        "calls that are not streams take `retry=`."
    )
    for service, _, comment in contract.services:
        out += ["", f"### {service}", ""]
        if comment:
            out += [comment, ""]
        for method in contract.methods:
            if method.service != service:
                continue
            args = []
            positional = [p for p in method.params if p.positional]
            keywords = [p for p in method.params if not p.positional]
            for param in positional:
                args.append(
                    param.name if param.default is None else f"{param.name}={param.default}"
                )
            if keywords:
                args.append("*")
                args += [f"{p.name}={p.default}" for p in keywords]
            returns = _short(return_type(method).removeprefix("Async"))
            if method.settings.get("pager"):
                returns = f"Pager[{_short(method.item_type)}]"
            out.append(f"#### `{method.name}({', '.join(args)}) -> {returns}`")
            out.append("")
            out.append(method.comment or f"Calls {service}.{method.rpc}.")
            if method.settings.get("doc"):
                out += ["", " ".join(method.settings["doc"].split()).replace("``", "`")]
            described = [p for p in method.params if p.doc]
            if described:
                out.append("")
                out += [f"- `{p.name}`: {p.doc}" for p in described]
            out += ["", call_settings(method), ""]
    out.append(DOCS_END)
    return "\n".join(out).rstrip("\n").replace("\n\n\n", "\n\n") + "\n"


def docs_with_reference(text: str, reference: str) -> str:
    start, end = text.index(DOCS_BEGIN), text.index(DOCS_END) + len(DOCS_END) + 1
    return text[:start] + reference + text[end:]


# Entry points


def render(root: Path = ROOT) -> dict[Path, str]:
    """What the generator writes: path (relative to the repository) -> content, from the
    protos, sdk.toml and docs/sdk.md under ``root``."""
    config = tomllib.loads((root / CONFIG.relative_to(ROOT)).read_text())
    contract = read_contract(load_descriptors(root / PROTO_ROOT.relative_to(ROOT)), config)
    unknown = set(config) - {m.rpc for m in contract.methods}
    if unknown:
        raise SystemExit(f"sdk.toml configures RPCs the protos do not have: {sorted(unknown)}")
    words = {
        word
        for method in contract.methods
        for param in method.params
        for word in re.findall(r"(?<![\w.])[A-Za-z_]\w*", f"{param.type} {param.default or ''}")
    }
    known = ABC_NAMES | DATETIME_NAMES | REQUESTS_NAMES | _sdk_type_names() | BUILTINS
    if words - known - contract.modules:
        raise SystemExit(f"sdk.toml names what the clients cannot import: {words - known}")
    docs = (root / DOCS.relative_to(ROOT)).read_text()
    return {
        ASYNC_CLIENT.relative_to(ROOT): client_module(contract, sync=False),
        SYNC_CLIENT.relative_to(ROOT): client_module(contract, sync=True),
        DOCS.relative_to(ROOT): docs_with_reference(docs, docs_reference(contract)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the output is stale")
    args = parser.parse_args(argv)
    stale = []
    for relative, content in render().items():
        path = ROOT / relative
        if path.exists() and path.read_text() == content:
            continue
        if args.check:
            stale.append(str(relative))
        else:
            path.write_text(content)
            print(relative)
    if stale:
        raise SystemExit(f"stale: {', '.join(stale)}: run python scripts/gen_client.py")


if __name__ == "__main__":
    main()
