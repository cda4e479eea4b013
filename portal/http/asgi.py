"""Just enough ASGI to serve the portal protocols without a web framework.

Why not a framework: the protocols need exact control over raw paths
(``%2f`` must stay inside a name, never become a separator), streaming of
multi-gigabyte bodies in both directions, and bodies that are neither JSON nor
forms.  Those are a few dozen lines on bare ASGI and awkward everywhere else.

:class:`HttpError` is the one way a handler refuses a request: the app turns it
into a response with the portal's XML error body (``{rc, msg}``) so that every
client, including the vendor SDK, sees the reason.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any

from wire import ctera_xml

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class HttpError(Exception):
    """Refuse the request with ``status`` and a reason the client can show."""

    def __init__(self, status: int, message: str, *, headers: Iterable[tuple[str, str]] = (), rc: int = -1) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = list(headers)
        self.rc = rc

    def response(self) -> Response:
        body = encode_reply(ctera_xml.obj("ErrorInfo", rc=self.rc, msg=self.message))
        return Response(self.status, body, content_type="text/xml; charset=utf-8", headers=self.headers)


class Headers:
    """Case-insensitive request headers (the last value wins; ``get_all`` for lists)."""

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        self._items = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw]

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for key, value in reversed(self._items):
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self._items if key == name]


@dataclass
class Request:
    scope: Scope
    receive: Receive
    method: str = field(init=False)
    segments: list[str] = field(init=False)
    query: dict[str, list[str]] = field(init=False)
    headers: Headers = field(init=False)
    _consumed: bool = field(default=False, init=False)
    _finished: bool = field(default=False, init=False)
    _disconnected: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.method = self.scope["method"].upper()
        raw = self.scope.get("raw_path") or self.scope["path"].encode("utf-8")
        raw_path = raw.split(b"?", 1)[0].decode("latin-1")
        self.segments = decode_segments(raw_path)
        self.query = urllib.parse.parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.headers = Headers(self.scope.get("headers", []))

    @property
    def host(self) -> str:
        return self.headers.get("host") or "localhost"

    @property
    def scheme(self) -> str:
        return self.scope.get("scheme", "https")

    def cookie(self, name: str) -> str | None:
        for header in self.headers.get_all("cookie"):
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(header)
            except CookieError:
                continue
            if name in jar:
                return jar[name].value
        return None

    async def stream(self) -> AsyncIterator[bytes]:
        """The request body, chunk by chunk, as it arrives."""
        if self._consumed:
            raise RuntimeError("request body already read")
        self._consumed = True
        while not self._finished:
            message = await self._receive()
            if self._disconnected:
                raise HttpError(400, "client disconnected before the body was complete")
            chunk = message.get("body", b"")
            if chunk:
                yield chunk

    async def _receive(self) -> dict[str, Any]:
        """The next ASGI message, noting the end of the body and disconnection.

        After ``http.disconnect`` the server sends nothing more: another
        ``receive()`` would wait forever, so nobody may call it again.
        """
        if self._disconnected:
            return {"type": "http.disconnect"}
        message = await self.receive()
        if message["type"] == "http.disconnect":
            self._disconnected = True
        elif not message.get("more_body", False):
            self._finished = True
        return message

    async def discard(self, limit: int | None = None) -> bool:
        """Read and drop what is left of the body; True once it has all arrived.

        Why: a reply sent while the request body is still arriving makes the
        server close the connection with unread data in it, which TCP turns
        into a reset that can destroy the reply before the client reads it.  So
        a refusal reaches the client only once its body is consumed.  Beyond
        ``limit`` more bytes the refusal is not worth the bandwidth and the
        client takes its chances.  (hypercorn answers ``Expect: 100-continue``
        by itself, so such a client is sending its body too.)
        """
        if self._finished:
            return True
        declared = self.headers.get("content-length")
        if not self._consumed and limit is not None and declared and declared.isdigit() and int(declared) > limit:
            return False
        self._consumed = True
        dropped = 0
        while not self._finished:
            message = await self._receive()
            if self._disconnected:
                return False
            dropped += len(message.get("body", b""))
            if limit is not None and dropped > limit and not self._finished:
                return False
        return True

    async def body(self, limit: int) -> bytes:
        """The whole body, refused with 413 beyond ``limit`` bytes."""
        declared = self.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HttpError(413, f"request body larger than {limit} bytes")
        parts = bytearray()
        async for chunk in self.stream():
            parts += chunk
            if len(parts) > limit:
                raise HttpError(413, f"request body larger than {limit} bytes")
        return bytes(parts)


def decode_segments(raw_path: str) -> list[str]:
    """Split a raw URL path on ``/`` *before* percent-decoding each segment.

    So ``a%2Fb`` is one segment named ``a/b`` (later refused as an invalid
    name), never two.  ``+`` stays a plus.  Empty segments (``//``, a trailing
    slash) are dropped; ``.`` and ``..`` are kept so that callers refuse them.
    Bad escapes raise :class:`HttpError` 400.
    """
    return [unquote_name(part) for part in raw_path.split("/") if part]


def unquote_name(part: str) -> str:
    """Percent-decode one path segment, once.

    Escapes that do not decode to UTF-8 (``%ff``, overlong forms such as
    ``%C0%AE``, surrogates) are the client's error: 400, never a guess.
    """
    try:
        return urllib.parse.unquote(part, errors="strict")
    except UnicodeDecodeError:
        raise HttpError(400, f"malformed URL encoding in {part[:100]!r}") from None


@dataclass
class Response:
    status: int = 200
    body: bytes | AsyncIterable[bytes] = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    #: The ``Content-Length`` to announce; None means ``len(body)`` (or none for a stream).
    content_length: int | None = None

    async def send(self, send: Send, *, head_only: bool = False) -> int:
        """Send the reply; returns the body bytes handed to the server."""
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers]
        if self.content_type:
            headers.append((b"content-type", self.content_type.encode("latin-1")))
        # An explicit length wins: a HEAD or 304 reply announces the length of the
        # content it leaves out (RFC 9110 §8.6), not the empty body it carries.
        length = self.content_length if self.content_length is not None else (
            len(self.body) if isinstance(self.body, bytes) else None
        )
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        if head_only:
            await _close_stream(self.body)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return 0
        if isinstance(self.body, bytes):
            await send({"type": "http.response.body", "body": self.body, "more_body": False})
            return len(self.body)
        sent = 0
        try:
            async for chunk in self.body:
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    sent += len(chunk)
        finally:
            await _close_stream(self.body)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return sent


async def _close_stream(body: bytes | AsyncIterable[bytes]) -> None:
    closer = getattr(body, "aclose", None)
    if closer is not None:
        await closer()


def xml_response(value: ctera_xml.Value, status: int = 200, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(status, encode_reply(value), content_type="text/xml; charset=utf-8", headers=list(headers))


#: Characters XML 1.0 cannot carry at all, not even as character references.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def encode_reply(value: ctera_xml.Value) -> bytes:
    """A reply document that always parses.

    Replies echo what clients sent (a task's failure names the path it could
    not find, an error repeats a bad parameter), and a decoded path may hold
    NUL or other characters XML cannot express; one of them would make the
    whole reply unreadable.  They become U+FFFD.  Markup is ASCII, so only
    text is touched; stored names never contain such characters.
    """
    return _NOT_XML.sub("\ufffd", ctera_xml.encode_text(value)).encode("utf-8")


def text_response(text: str, status: int = 200) -> Response:
    return Response(status, text.encode("utf-8"), content_type="text/plain; charset=utf-8")


def href(context: str, path: Iterable[str]) -> str:
    """The percent-encoded absolute href of a namespace path (``{ctx}/webdav/…``)."""
    encoded = "/".join(urllib.parse.quote(name, safe="") for name in path)
    return f"{context}/webdav/{encoded}" if encoded else f"{context}/webdav"
