"""Uploads begun before their length is known: a WebDAV ``PUT`` with a chunked body.

Why.  The portal's own upload (:mod:`.uploads`, spec §4.6) declares the
file's size before its first byte, so a file can only go out once it is
closed: copying a large file onto the mount takes the time to write it
*plus* the time to send it.  The same portal serves the file namespace over
WebDAV (``{ctx}/webdav``, the path every download already uses), and a
``PUT`` there with ``Transfer-Encoding: chunked`` needs no length: the
filesystem can start sending a file while it is still being written and end
the body when the file is closed (``vfs.early_uploads``).

What the portal must do, and what is assumed (docs/PROTOCOL-CHOICES.md):

* a ``PUT`` onto an existing file adds a version to that same file (its
  identity, history and shares kept), as the multipart upload does;
* a body cut off before its last chunk leaves nothing behind: no file, no
  version (a server that cannot know the length cannot commit early);
* ``If-None-Match: *`` refuses a ``PUT`` onto a name that exists (412).

The vendor SDK never sends a ``PUT`` (spec §7), so whether a given portal
accepts one is not known in advance: a 405 or 501 is taken to mean it does
not, remembered, and reported as ``Unsupported`` without asking again.  But
WebDAV answers a ``PUT`` onto a folder with 405 too (a folder took the file's
name before the ``PUT`` arrived), so a 405 is followed by a look at the path:
a folder there fails that upload alone, as ``IsADirectory``.

Only through the bulk transport: its worker thread encrypts and sends while
the filesystem keeps producing.  One attempt, never retried, since the body
cannot be replayed (a session that expired meanwhile fails it too); the
caller falls back to the ordinary upload on any failure.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

import trio

from vfs.backends.base import BackendError, IsADirectory, Path, RemoteEntry, Transient, Unsupported
from vfs.backends.ctera.counters import Counters, RequestKind
from vfs.backends.ctera.paths import check_new_name, href_of
from vfs.backends.ctera.session import Session
from vfs.backends.ctera.uploads import Stat

#: The largest reply read (a PUT answers with an empty body or a short error).
MAX_PUT_REPLY = 64 << 10
#: Statuses that say the portal does not take a ``PUT`` at all.
NOT_OFFERED = frozenset({405, 501})

class _Body:
    """The content as the request body: counted, handed out once only, and closed after."""

    def __init__(self, content: AsyncIterator[bytes], counters: Counters, what: str) -> None:
        self._content = content
        self._counters = counters
        self._what = what
        self._chunks: AsyncGenerator[bytes] | None = None

    def __call__(self) -> AsyncIterator[bytes]:
        if self._chunks is not None:
            # The session asks again after a new login: the body cannot be replayed.
            raise Transient(f"{self._what}: the session expired while the body was being sent")
        self._chunks = self._counted()
        return self._chunks

    async def _counted(self) -> AsyncGenerator[bytes]:
        async with contextlib.aclosing(self._content) as content:  # type: ignore[type-var]
            async for chunk in content:
                if chunk:
                    self._counters.upload_bytes += len(chunk)
                    yield bytes(chunk)

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            if self._chunks is not None:
                await self._chunks.aclose()
            else:
                close = getattr(self._content, "aclose", None)
                if close is not None:
                    await close()


class StreamedUploader:
    """``PUT`` uploads through one session (see the module docstring)."""

    def __init__(self, session: Session, counters: Counters, *, stat: Stat) -> None:
        self._session = session
        self._counters = counters
        self._stat = stat
        #: why the portal was found not to take a PUT (None: not found so)
        self._refused: str | None = None

    async def upload(self, path: Path, content: AsyncIterator[bytes], *, new: bool) -> RemoteEntry:
        what = f"streamed upload of /{'/'.join(path)}"
        if not path:
            raise IsADirectory(f"{what}: the root is a folder")
        check_new_name(path[-1], what)
        if self._session.bulk is None:
            raise Unsupported(f"{what}: needs the blocking transport (none with a proxy or an injected one)")
        if self._refused is not None:
            raise Unsupported(f"{what}: {self._refused}")
        target = href_of(self._session.context, path)
        headers = {"content-type": "application/octet-stream"}
        if new:
            headers["if-none-match"] = "*"
        body = _Body(content, self._counters, what)
        refused_with: int | None = None
        try:
            async with self._session.open("PUT", target, kind=RequestKind.PUT, what=what, headers=headers,
                                          body=body, bulk=True) as response:
                if response.status_code in NOT_OFFERED:
                    refused_with = response.status_code
                elif not response.is_success:
                    raise await self._session.error_of(response, what=what)
                else:
                    await self._session.read_body(response, what=what, limit=MAX_PUT_REPLY, truncate=True)
        finally:
            await body.aclose()
        if refused_with is not None:
            if refused_with == 405 and await self._is_folder(path):
                raise IsADirectory(f"{what}: a folder has that name (HTTP 405)")
            self._refused = f"the portal does not take a WebDAV PUT (HTTP {refused_with})"
            raise Unsupported(f"{what}: {self._refused}")
        return await self._stat(path)

    async def _is_folder(self, path: Path) -> bool:
        """Is there a folder at ``path``?  (False when that cannot be told: streaming is then
        switched off, the safe side.)"""
        try:
            return (await self._stat(path)).is_dir
        except BackendError:
            return False

