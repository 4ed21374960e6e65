"""Hostile input: every RPC's request messages generated field by field from their
descriptors (hypothesis), raw bytes in place of messages, garbage on the port, and feed
files made of anything. The server must answer each with a clear code, never INTERNAL
or UNKNOWN, never write part of a refused request, and keep serving.

Counts of what was tried are printed at the end (`pytest -s`) and kept in docs/security.md.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from factories import store, update
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnistock.client import Client
from omnistock.server.files.formats import Format, FormatError, Mode, Record, Reject, Settings
from omnistock.server.files.reader import FeedReader
from omnistock.server.testing import InProcessServer
from omnistock.v1 import availability_pb2, channel_pb2, feed_pb2, location_pb2, reservation_pb2
from sqlalchemy import text

ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.OUT_OF_RANGE,
}
# Streams that apply each valid record on its own by design (the rest are all or nothing).
PARTIAL_BY_DESIGN = {"StreamDeltas"}
EXAMPLES = 100
# The suite runs the same examples every time (a CI run must not fail by chance);
# OMNISTOCK_FUZZ_RANDOM=1 explores new ones, and OMNISTOCK_FUZZ_EXAMPLES=N more of them.
RANDOM = bool(os.environ.get("OMNISTOCK_FUZZ_RANDOM"))
EXAMPLES = int(os.environ.get("OMNISTOCK_FUZZ_EXAMPLES", EXAMPLES))
TRIED: Counter[str] = Counter()
OUTCOMES: Counter[tuple[str, str]] = Counter()

IDS = ["NL-AMS-01", "NL-UTR-01", "PHONE", "CASE", "rsv_" + "0" * 26]
NOW = datetime.now(UTC)


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return st.sampled_from(IDS) | st.text(max_size=70)
    if t == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=40)
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32 if t == 2 else 64)
    if t == FieldDescriptor.TYPE_ENUM:
        return st.integers(-3, 12)
    if t in (
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SFIXED32,
    ):
        return st.integers(-(2**31), 2**31 - 1) | st.integers(-5, 20)
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    return st.integers(-(2**63), 2**63 - 1) | st.integers(-5, 20)


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    """Any message of this type: each field left out, or set to anything of its type."""
    cls = message_factory.GetMessageClass(descriptor)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 3:
                continue
            value = messages(field.message_type, depth + 1)
        else:
            value = _scalar(field)
        if field.is_repeated:
            value = st.lists(value, max_size=4)
        fields[field.name] = value

    def build(values: dict[str, Any]) -> Any:
        message = cls()
        for name, value in values.items():
            try:
                if isinstance(value, list):
                    getattr(message, name).extend(value)
                elif hasattr(value, "DESCRIPTOR"):
                    getattr(message, name).CopyFrom(value)
                else:
                    setattr(message, name, value)
            except (ValueError, TypeError):
                pass  # a value protobuf itself refuses (e.g. invalid UTF-8): leave it out
        return message

    return st.fixed_dictionaries({}, optional=fields).map(build)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    db = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    with InProcessServer(database_url=f"sqlite:///{db}") as server:
        with Client(server.target) as client:
            client.upsert_locations([store("NL-AMS-01"), store("NL-UTR-01")])
            client.apply_stock_updates(
                [update("NL-AMS-01", "PHONE", 5, NOW - timedelta(minutes=5)),
                 update("NL-UTR-01", "CASE", 3, NOW - timedelta(minutes=5))]
            )  # fmt: skip
        assert server.server is not None
        yield server.target, server.server.engine
    print("\nhostile input tried:", dict(TRIED))
    print("outcomes:", {f"{m} {c}": n for (m, c), n in sorted(OUTCOMES.items())})


def state(engine: Any) -> tuple[Any, ...]:
    with engine.connect() as connection:
        return tuple(
            connection.execute(text(sql)).scalar()
            for sql in (
                "SELECT COUNT(*) FROM locations",
                "SELECT COUNT(*) FROM stock",
                "SELECT COALESCE(SUM(on_hand), 0) FROM stock",
                "SELECT COALESCE(SUM(reserved), 0) FROM stock",
                "SELECT COUNT(*) FROM reservations",
                "SELECT COUNT(*) FROM location_group_members",
                "SELECT COUNT(*) FROM channels",
            )
        )


def methods() -> list[tuple[str, Any, Any]]:
    found = []
    for module in (location_pb2, availability_pb2, feed_pb2, reservation_pb2, channel_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                found.append((f"/{service.full_name}/{method.name}", method, service))
    return found


def call(channel: grpc.Channel, path: str, method: Any, body: Any) -> grpc.StatusCode:
    """Send ``body`` (a message, or raw bytes) and read the answer (the first message of a
    stream: a watch then waits for changes)."""
    serialize = (lambda b: b) if isinstance(body, bytes) else (lambda m: m.SerializeToString())
    try:
        if method.client_streaming:
            bodies = [body] if isinstance(body, bytes) else body
            if method.server_streaming:
                stream = channel.stream_stream(path, request_serializer=serialize)(
                    iter(bodies), timeout=10
                )
                next(stream, None)
                stream.cancel()
            else:
                channel.stream_unary(path, request_serializer=serialize)(iter(bodies), timeout=10)
        elif method.server_streaming:
            stream = channel.unary_stream(path, request_serializer=serialize)(body, timeout=10)
            next(stream, None)
            stream.cancel()
        else:
            channel.unary_unary(path, request_serializer=serialize)(body, timeout=10)
    except grpc.RpcError as error:
        code = error.code()  # type: ignore[attr-defined]
        if code is grpc.StatusCode.CANCELLED:
            return grpc.StatusCode.OK  # we cancelled a stream after its first message
        assert "Traceback" not in (error.details() or "")  # type: ignore[attr-defined]
        return code  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=not RANDOM,
)


@pytest.mark.parametrize(
    ("path", "method", "service"),
    methods(),
    ids=lambda v: str(v).rsplit("/", 1)[-1] if isinstance(v, str) else "",
)
def test_generated_requests_get_clear_answers(
    target: tuple[str, Any], path: str, method: Any, service: Any
) -> None:
    address, engine = target
    name = path.rsplit("/", 1)[1]
    request = messages(method.input_type)
    body = st.lists(request, min_size=0, max_size=3) if method.client_streaming else request

    @FUZZ
    @given(body)
    def attempt(body: Any) -> None:
        before = state(engine)
        with grpc.insecure_channel(address) as channel:
            code = call(channel, path, method, body)
        TRIED[name] += 1
        OUTCOMES[(name, code.name)] += 1
        assert code in ALLOWED, f"{name} answered {code.name}"
        if code is not grpc.StatusCode.OK and name not in PARTIAL_BY_DESIGN:
            assert state(engine) == before, f"{name} wrote part of a refused request"

    attempt()


@pytest.mark.parametrize(
    ("path", "method", "service"),
    methods(),
    ids=lambda v: str(v).rsplit("/", 1)[-1] if isinstance(v, str) else "",
)
def test_bytes_that_are_not_messages_are_invalid_argument(
    target: tuple[str, Any], path: str, method: Any, service: Any
) -> None:
    address, _ = target
    name = path.rsplit("/", 1)[1]

    @settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=not RANDOM,
    )
    @given(st.binary(min_size=1, max_size=200))
    def attempt(body: bytes) -> None:
        with grpc.insecure_channel(address) as channel:
            code = call(channel, path, method, body)
        TRIED[f"{name} (raw bytes)"] += 1
        OUTCOMES[(f"{name} (raw bytes)", code.name)] += 1
        assert code in ALLOWED, f"{name} answered {code.name} to raw bytes"

    attempt()
    # Bytes that cannot be a message at all (a truncated field) say so plainly.
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as caught:
        bad = b"\x0a\xff\x01"  # field 1, length 255, then one byte
        if method.client_streaming or method.server_streaming:
            raise grpc.RpcError  # covered above; unary is enough for the message check
        channel.unary_unary(path, request_serializer=lambda b: b)(bad, timeout=10)
    if isinstance(caught.value, grpc.Call):
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "valid message" in (caught.value.details() or "")


def test_garbage_on_the_port_does_not_stop_the_server(target: tuple[str, Any]) -> None:
    address, _ = target
    host, port = address.rsplit(":", 1)
    payloads = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        + b"\x00\x00\x12\x04\x00\x00\x00\x00\x00"
        + b"\xff" * 40,
        bytes(range(256)) * 8,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS hello
        b"",
    ]
    for payload in payloads:
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(payload)
            sock.settimeout(1)
            with contextlib.suppress(TimeoutError, ConnectionError):
                sock.recv(1024)
        TRIED["raw bytes on the port"] += 1
    with grpc.insecure_channel(address) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=not RANDOM,
)
@given(
    st.sampled_from(list(Format)),
    st.sampled_from(list(Mode)),
    st.lists(
        st.sampled_from(
            [
                "location_id,sku,on_hand,source_updated_at",
                "store_code\tid\tquantity\tavailability",
                '{"location_id":"NL-AMS-01","sku":"PHONE","on_hand":3}',
                "NL-AMS-01,PHONE,3,2026-11-23T10:00:00Z",
                "a,b",
                '"unterminated',
                "\x00\xff",
                "{",
                "[1,2]",
                "1e999",
            ]
        )
        | st.text(max_size=60),
        max_size=8,
    ).map("\n".join)
    | st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
)
def test_feed_files_of_anything_are_read_or_rejected_line_by_line(
    tmp_path_factory: pytest.TempPathFactory, fmt: Format, mode: Mode, content: str
) -> None:
    path = tmp_path_factory.mktemp("files") / "feed.txt"
    path.write_bytes(content.encode("utf-8", errors="surrogateescape"))
    TRIED["feed files"] += 1
    options = Settings(fmt, mode, location=None, as_of=None, now=NOW)
    try:
        reader = FeedReader(path, options)
    except FormatError:
        return  # a clear, whole-file refusal (no usable header)
    with reader._handle:
        for item in reader.items():
            assert isinstance(item, Record | Reject)
            if isinstance(item, Reject):
                assert item.reason
