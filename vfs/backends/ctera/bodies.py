"""Receiving a streamed response body, and stopping early without leaking generators.

httpx (0.28) and httpcore implement body streaming as a chain of six nested
async generators.  Leaving ``async for chunk in response.aiter_bytes()``
early, even inside ``aclosing()``, closes only the outermost one; the inner
ones are abandoned, and under trio every abandoned async generator is a
``ResourceWarning`` at garbage collection (an error in our test suite) plus
a clean-up task trio has to run later (httpx issue #3686).

Stopping early is routine here: a read that got what it wanted from a
server that ignores ``Range``, an XML reply that exceeds its size cap.  The
way out that leaves nothing behind: close the *response* (which closes the
connection) and keep iterating.  The next step of the innermost generator
then fails on the closed connection, and that error unwinds every generator
of the chain normally.  The error is expected and swallowed; chunks that
still arrive meanwhile are ignored.

:func:`receive` hides this: it feeds chunks to a callback until the callback
says "enough" (or raises), and maps genuine transport failures to
``Transient``.

Request bodies have the same trap: httpx wraps ``content=`` bytes in a
stream whose iterator is an async generator, which httpcore abandons when a
send is cancelled or its write fails.  :class:`WholeBody` holds such a body
and is iterated by a plain object instead, with nothing to abandon.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from vfs.backends.ctera.errors import from_transport

__all__ = ["WholeBody", "receive"]


async def receive(response: httpx.Response, on_chunk: Callable[[bytes], bool], *, what: str, url: str) -> None:
    """Feed body chunks to ``on_chunk`` until it returns False, raises, or the body ends.

    An exception raised by ``on_chunk`` is re-raised once the stream is shut.
    """
    stopped = False
    failure: Exception | None = None
    try:
        async for chunk in response.aiter_bytes():
            if stopped:
                continue
            try:
                wanted_more = on_chunk(chunk)
            except Exception as exc:  # re-raised below, after the chain is unwound
                failure, wanted_more = exc, False
            if not wanted_more:
                stopped = True
                await response.aclose()
    except httpx.TransportError as exc:
        if not stopped:
            raise from_transport(exc, what=what, url=url) from exc
    except httpx.StreamError:
        if not stopped:
            raise
    if failure is not None:
        raise failure


class WholeBody(httpx.AsyncByteStream):
    """A request body held whole, sent as one chunk without an async generator."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __aiter__(self) -> _Once:  # type: ignore[override]  # an iterator object, not a generator
        return _Once(self._data)


class _Once:
    """Yields its bytes once."""

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def __aiter__(self) -> _Once:
        return self

    async def __anext__(self) -> bytes:
        if self._data is None:
            raise StopAsyncIteration
        data, self._data = self._data, None
        return data
