"""Send exact bytes to a portal over TLS: hostile paths, truncated bodies, lies.

HTTP client libraries normalise what they send (``..`` segments are resolved,
bodies always match their ``Content-Length``), which is exactly what a test of
the server's defences must not do.  :func:`exchange` writes the given request
bytes unchanged and parses the one reply (``Content-Length`` or chunked).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

from tests.support.portal_http import tls_context
from tests.support.portal_process import PortalProcess


@dataclass
class RawReply:
    status: int
    headers: dict[str, str]
    body: bytes


def connect(portal: PortalProcess, timeout: float = 30.0) -> socket.socket:
    """A TLS (or plain) connection to the portal with a timeout on every operation."""
    sock = socket.create_connection((portal.host.strip("[]"), portal.port), timeout=timeout)
    context = tls_context(portal)
    if isinstance(context, ssl.SSLContext):
        sock = context.wrap_socket(sock, server_hostname=portal.host.strip("[]"))
    sock.settimeout(timeout)
    return sock


def request_bytes(method: str, target: bytes | str, headers: dict[str, str] | None = None, body: bytes = b"",
                  *, content_length: int | None = None) -> bytes:
    """An HTTP/1.1 request with ``target`` sent verbatim; ``content_length`` may lie."""
    target = target.encode("latin-1") if isinstance(target, str) else target
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: localhost"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}".encode("latin-1"))
    if body or content_length is not None or method in ("POST", "PUT"):
        lines.append(b"Content-Length: " + str(len(body) if content_length is None else content_length).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def exchange(portal: PortalProcess, data: bytes, *, timeout: float = 30.0) -> RawReply:
    """Send ``data`` on a new connection and read the reply to it."""
    with connect(portal, timeout) as sock:
        sock.sendall(data)
        return read_reply(sock, head=data.startswith(b"HEAD "))


def read_reply(sock: socket.socket, *, head: bool = False) -> RawReply:
    """One reply; ``head``: it answers a HEAD, so it has no body whatever its headers say."""
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a full reply head: {bytes(buffer)!r}")
        buffer += chunk
    reply_head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status_line, *header_lines = reply_head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = bytearray(rest)
    if head or status in (204, 304) or 100 <= status < 200:
        return RawReply(status, headers, b"")
    if "content-length" in headers:
        wanted = int(headers["content-length"])
        while len(body) < wanted:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed inside the reply body")
            body += chunk
        return RawReply(status, headers, bytes(body[:wanted]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return RawReply(status, headers, _dechunk(sock, body))
    return RawReply(status, headers, bytes(body))


def _dechunk(sock: socket.socket, pending: bytearray) -> bytes:
    out = bytearray()

    def fill(minimum: int) -> None:
        while len(pending) < minimum:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed inside a chunked body")
            pending.extend(chunk)

    while True:
        while b"\r\n" not in pending:
            fill(len(pending) + 1)
        line, _, remainder = bytes(pending).partition(b"\r\n")
        pending[:] = remainder
        size = int(line.split(b";")[0], 16)
        fill(size + 2)
        out += pending[:size]
        del pending[: size + 2]
        if size == 0:
            return bytes(out)
