"""A request body handed from the trio task that produces it to the worker thread that sends it.

Why a pipe, and not the worker pulling each chunk with ``trio.from_thread``:
a thread started with ``abandon_on_cancel`` runs such pulls in trio's
*system* nursery, where cancelling the upload never reaches them.  A source
stuck in a read (a staged file on a hung disk, say) would then keep a system
task and a worker thread forever, and the upload's own clean-up would find
its source still running.  Here the source is only ever iterated by the
task that asked for the upload, so cancellation, errors and clean-up stay
where they belong; the worker only takes finished chunks.

Shape: at most ``depth`` chunks wait.  The producer (trio side) waits for
room on a ``trio.Event`` that the worker sets through the trio token each
time it takes a chunk; the worker waits for a chunk on a condition variable.
Either side may end the pipe: the producer at the end of the body
(:meth:`finish`), or either one by :meth:`close` (the producer failed or was
cancelled; the worker's exchange is over), which wakes the other side.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Iterator

import trio

__all__ = ["BodyAbandoned", "BodyPipe"]

#: Chunks that may wait between producer and worker (an upload's chunks are MiBs).
DEPTH = 2


class BodyAbandoned(Exception):
    """The body's producer gave up (failed or cancelled): the request cannot be completed."""


class BodyPipe:
    """One request body in transit (see the module docstring).

    Guarded by ``_ready`` (a condition): ``_chunks``, ``_finished``,
    ``_closed`` and ``_room`` (the event the producer waits on when full).
    """

    def __init__(self, token: trio.lowlevel.TrioToken, depth: int = DEPTH) -> None:
        self._token = token
        self._depth = depth
        self._ready = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._finished = False
        self._closed = False
        self._room = trio.Event()

    # ------------------------------------------------------------ trio side

    async def put(self, chunk: bytes) -> bool:
        """Hand ``chunk`` over, waiting for room; False if the pipe was closed."""
        while True:
            with self._ready:
                if self._closed:
                    return False
                if len(self._chunks) < self._depth:
                    self._chunks.append(chunk)
                    self._ready.notify()
                    return True
                room = self._room = trio.Event()
            await room.wait()

    def finish(self) -> None:
        """No more chunks: the worker ends the body after the ones waiting."""
        with self._ready:
            self._finished = True
            self._ready.notify()

    # ------------------------------------------------------------ either side

    def close(self) -> None:
        """End the pipe now: a waiting worker raises BodyAbandoned, a waiting producer returns."""
        with self._ready:
            self._closed = True
            self._chunks.clear()
            self._ready.notify()
            room = self._room
        self._wake(room)

    # ------------------------------------------------------------ worker side

    def chunks(self) -> Iterator[bytes]:
        """The body, chunk by chunk, as the producer hands it over."""
        while True:
            with self._ready:
                while not (self._chunks or self._finished or self._closed):
                    self._ready.wait()
                if self._closed:
                    raise BodyAbandoned("the request body was abandoned")
                if not self._chunks:
                    return
                chunk = self._chunks.popleft()
                room = self._room
            self._wake(room)
            yield chunk

    def _wake(self, room: trio.Event) -> None:
        try:
            trio.lowlevel.current_task()
        except RuntimeError:  # a worker thread: ask the trio thread to set it
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(room.set)
        else:
            room.set()
