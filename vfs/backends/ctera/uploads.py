"""Uploads: one multipart ``POST {ctx}/upload/folders/<cloudFolderUid>`` per file (spec §4.6).

The body is the vendor SDK's form, parts in its order: ``name``,
``Filename`` (the target's name, raw UTF-8), ``fullpath`` (the target's
absolute URL with scheme, host and explicit port, percent-encoded path),
``fileSize`` and ``file`` (the content).  The reply is ``{rc, msg}``: ``rc``
0 is success; anything else is refused in-band and mapped by ``msg``
(:func:`~vfs.backends.ctera.errors.upload_error`).

Subtleties:

* **Streaming with an exact length.**  The content comes from the caller's
  ``source()`` chunk by chunk and is never held whole.  The multipart
  envelope (everything but the content) is built first, so the
  ``Content-Length`` is known and the body goes out unchunked, as the SDK
  sends it.  ``source`` yielding more or fewer than ``size`` bytes is a bug of
  the caller (ValueError), not something to send.
* **The cloud folder uid** is ``cloudFolderInfo.uid`` of the target's parent,
  remembered per folder (:mod:`.cloud_folders`), so uploading many files into
  one folder costs one stat, often none.  Looking the parent up also refuses
  uploads into the root or a container (ReadOnly), into a file
  (NotADirectory) or without write permission (PermissionDenied) before any
  content is sent.  A remembered uid that the portal refuses (the folder
  moved away meanwhile) is looked up again once, and the upload sent again
  if the folder now has another.
* **Retries.**  An upload is idempotent in effect: sending the same bytes
  to the same path again at worst adds one more identical version to the
  file's history.  So a transient failure (a reset, a timeout, a 5xx, the
  portal's ``No available storage location``) restarts the upload from a
  new ``source()`` under the retry policy.  The attempt after a failure
  looks the parent up afresh first: a cheap request that also renews an
  expired session before the body is sent again (a portal that is not
  willing to drain a large body before its 302 would otherwise just reset
  the connection, which looks like any other network failure).
* **Large files go through the bulk transport** (:mod:`.bulk`, blocking
  HTTP on a worker thread, to which the uploading task hands the chunks of
  ``source()`` through a bounded pipe, :mod:`.bulk_body`): on httpx, encrypting the body cost the trio thread, the one
  that answers the kernel, ~2 s of CPU per GB.  Small files stay on httpx,
  where a request costs no thread hops.
* **Session expiry** answered with the 302 (after the portal drained the
  body) is handled by the session: it logs in and sends the body again from
  a fresh ``source()``.
* Every ``source()`` iterator is closed after its attempt, whether it was
  read to the end or not (trio warns about abandoned async generators).
"""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import trio

from vfs.backends.base import (
    BackendError,
    IsADirectory,
    Path,
    ProtocolError,
    RemoteEntry,
    Transient,
    UploadSource,
)
from vfs.backends.ctera.cloud_folders import CloudFolders
from vfs.backends.ctera.counters import Counters, RequestKind
from vfs.backends.ctera.errors import upload_error
from vfs.backends.ctera.paths import check_new_name, href_of
from vfs.backends.ctera.resources import Placement, write_refusal
from vfs.backends.ctera.session import Session
from vfs.backends.retry import RetryHook, RetryPolicy
from wire import ctera_xml
from wire.ctera_xml import XmlDecodeError

__all__ = ["MultipartBody", "Stat", "Uploader"]

#: The largest upload reply read (it is a two-field object).
MAX_UPLOAD_REPLY = 64 << 10
#: Uploads of this size or more go through the bulk transport (module docstring).
BULK_UPLOAD_MIN = 1 << 20

#: The item as the portal describes it now (with retries).
Stat = Callable[[Path], Awaitable[RemoteEntry]]


class MultipartBody(httpx.AsyncByteStream):
    """The upload form as a stream: envelope head, the content from ``source()``, tail.

    A plain async *iterator* object, not an async generator: httpcore stops
    iterating a request body when a write fails, and an abandoned generator
    is a ResourceWarning under trio.  :meth:`aclose` closes the source.
    """

    def __init__(self, head: bytes, source: UploadSource, size: int, tail: bytes, counters: Counters) -> None:
        self._head = head
        self._source = source
        self._size = size
        self._tail = tail
        self._counters = counters
        self._iterator: AsyncIterator[bytes] | None = None
        self._sent = 0
        self._phase = 0  # 0 head, 1 content, 2 tail, 3 done

    def __aiter__(self) -> MultipartBody:  # type: ignore[override]
        return self

    async def __anext__(self) -> bytes:
        if self._phase == 0:
            self._phase = 1
            return self._head
        if self._phase == 1:
            chunk = await self._next_content()
            if chunk is not None:
                return chunk
            self._phase = 2
        if self._phase == 2:
            self._phase = 3
            return self._tail
        raise StopAsyncIteration

    async def _next_content(self) -> bytes | None:
        if self._iterator is None:
            self._iterator = aiter(self._source())
        while True:
            try:
                chunk = await anext(self._iterator)
            except StopAsyncIteration:
                if self._sent != self._size:
                    raise ValueError(f"the upload source ended after {self._sent} of {self._size} bytes") from None
                return None
            if not chunk:
                continue
            self._sent += len(chunk)
            if self._sent > self._size:
                raise ValueError(f"the upload source yields more than the {self._size} bytes announced")
            self._counters.upload_bytes += len(chunk)
            return bytes(chunk)

    async def aclose(self) -> None:
        iterator, self._iterator = self._iterator, None
        close: Callable[[], Awaitable[Any]] | None = getattr(iterator, "aclose", None)
        if close is not None:
            with trio.CancelScope(shield=True):
                await close()


class Uploader:
    """Uploads files through one session (see the module docstring)."""

    def __init__(
        self,
        session: Session,
        retry: RetryPolicy,
        counters: Counters,
        folders: CloudFolders,
        *,
        stat: Stat,
        on_retry: RetryHook | None = None,
    ) -> None:
        self._session = session
        self._retry = retry
        self._counters = counters
        self._folders = folders
        self._stat = stat
        self._on_retry = on_retry

    async def upload(self, path: Path, source: UploadSource, size: int) -> RemoteEntry:
        """Send the content and describe the file the portal now has at ``path``."""
        if size < 0:
            raise ValueError("size must not be negative")
        what = f"upload of /{'/'.join(path)}"
        if not path:
            raise IsADirectory(f"{what}: the root is a folder")
        check_new_name(path[-1], what)
        fresh = False

        def refusal(entry: RemoteEntry, placement: Placement) -> BackendError | None:
            return write_refusal(entry, placement, what=what)

        async def send(uid: str) -> None:
            await self._send(path, uid, source, size, what)

        async def attempt() -> None:
            nonlocal fresh
            try:
                await self._folders.send(path[:-1], send, refusal=refusal, what=what, fresh=fresh)
            except Transient:
                # The next attempt looks the parent up first (see the module docstring).
                fresh = True
                raise

        await self._retry.run(attempt, on_retry=self._on_retry)
        return await self._stat(path)

    async def _send(self, path: Path, uid: str, source: UploadSource, size: int, what: str) -> None:
        """One POST of the form (and its repeat after a re-login); raises unless ``rc`` is 0."""
        boundary = secrets.token_hex(16)
        head, tail = envelope(boundary, path[-1], self._full_url(path), size)
        streams: list[MultipartBody] = []

        def body() -> MultipartBody:
            stream = MultipartBody(head, source, size, tail, self._counters)
            streams.append(stream)
            return stream

        try:
            reply = await self._session.request(
                "POST",
                f"{self._session.context}/upload/folders/{urllib.parse.quote(uid, safe='')}",
                kind=RequestKind.UPLOAD,
                what=what,
                limit=MAX_UPLOAD_REPLY,
                headers={
                    "content-type": f"multipart/form-data; boundary={boundary}",
                    "content-length": str(len(head) + size + len(tail)),
                },
                body=body,
                bulk=size >= BULK_UPLOAD_MIN,
            )
        finally:
            for stream in streams:
                await stream.aclose()
        error = _reply_error(reply.body, what)
        if error is not None:
            raise error

    def _full_url(self, path: Path) -> str:
        """``fullpath``: the target's absolute URL, always with an explicit port (as the SDK sends it)."""
        base = self._session.client.base_url
        port = base.port or (443 if base.scheme == "https" else 80)
        host = f"[{base.host}]" if ":" in base.host else base.host
        return f"{base.scheme}://{host}:{port}{href_of(self._session.context, path)}"


def envelope(boundary: str, name: str, full_url: str, size: int) -> tuple[bytes, bytes]:
    """The form around the content: (everything before it, everything after it)."""
    parts = []
    for field, value in (("name", name), ("Filename", name), ("fullpath", full_url), ("fileSize", str(size))):
        parts.append(
            f"--{boundary}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f'Content-Disposition: form-data; name="{field}"\r\n\r\n'
            f"{value}\r\n"
        )
    parts.append(
        f"--{boundary}\r\n"
        "Content-Type: application/octet-stream\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{_quoted_filename(name)}"\r\n\r\n'
    )
    return "".join(parts).encode("utf-8"), f"\r\n--{boundary}--\r\n".encode("ascii")


def _quoted_filename(name: str) -> str:
    """The name inside ``filename="…"``, with the characters that would end it escaped (RFC 7578 §4.2)."""
    return name.replace("\\", "%5C").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _reply_error(body: bytes, what: str) -> BackendError | None:
    """None for ``rc`` 0; the mapped error otherwise."""
    try:
        reply = ctera_xml.as_obj(ctera_xml.decode(body))
        if reply is None:
            raise XmlDecodeError("the reply is empty")
        rc = ctera_xml.as_int(reply.get("rc"))
        msg = ctera_xml.as_str(reply.get("msg")) or ""
    except XmlDecodeError as exc:
        return ProtocolError(f"{what}: unexpected upload reply ({exc})")
    if rc is None:
        return ProtocolError(f"{what}: the upload reply has no rc")
    if rc == 0:
        return None
    return upload_error(msg, what=what)
