"""A bare HTTP/2 gRPC call, for metadata no gRPC client will send (bytes that are not
UTF-8). HPACK literals without indexing or Huffman coding are enough for a server."""

from __future__ import annotations

import socket
import struct
import time


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream)
        + payload
    )


def _literal(name: bytes, value: bytes) -> bytes:
    assert len(name) < 127 and len(value) < 127  # one-byte lengths
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def call(target: str, path: str, headers: list[tuple[bytes, bytes]], message: bytes = b"") -> bytes:
    """Send one unary call with ``headers`` added; what came back, raw, once it has a
    grpc-status (or after three seconds)."""
    host, port = target.rsplit(":", 1)
    block = b"".join(
        _literal(name, value)
        for name, value in [
            (b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()),
            (b":authority", target.encode()), (b"content-type", b"application/grpc"),
            (b"te", b"trailers"), *headers,
        ]
    )  # fmt: skip
    body = b"\x00" + struct.pack(">I", len(message)) + message
    with socket.create_connection((host, int(port)), timeout=3) as sock:
        sock.sendall(
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            + _frame(4, 0, 0, b"")  # SETTINGS
            + _frame(1, 4, 1, block)  # HEADERS, END_HEADERS
            + _frame(0, 1, 1, body)  # DATA, END_STREAM
        )
        received = b""
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and b"grpc-status" not in received:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
    return received
