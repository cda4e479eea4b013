"""Per-handle read pattern detection and the adaptive read-ahead window.

The problem: a sequential reader (``cp``, a video player, ``sha256sum``)
should find its next blocks already cached, fetched in the background in
large parallel ranges; a random reader (a database, ``file``, a thumbnailer
reading headers) must not pay for bytes it never reads — one 4 KiB read
should cost about one block, never a whole file.

Policy (one ``ReadStream`` per open file handle):

* A read is *sequential* when it starts within ``sequential_slack`` bytes of
  the furthest end reached so far. The slack absorbs the kernel delivering
  its parallel read requests slightly out of order; anything else is a seek.
* The first read of a handle gets no read-ahead: one read says nothing about
  the pattern. The first sequential read opens a window of one block; it
  then doubles each time the reader enters a new block, up to the cache's
  read-ahead limit (``max_readahead``, and at most half the memory tier so
  read-ahead does not evict its own blocks before the reader gets there).
  Doubling per block entered, not per read, keeps the ramp independent of
  the kernel's request size.
* A seek closes the window; the reader has to prove sequential again.
* The window is anchored at the furthest end reached: blocks in
  ``[end, end + window)`` should be cached or in flight. ``_planned`` remembers
  how far that has been arranged, so each read only looks at the blocks the
  window newly covers (amortised O(1) per block, not O(window) per read).
  The cache moves the mark only as far as it actually got fetches started.

A stream is plain state with no awaits inside, so concurrent reads on one
handle (the kernel's async reads run as separate trio tasks) see each other's
updates atomically; no lock needed.
"""

from __future__ import annotations

from .keys import ObjectKey


class ReadStream:
    """The read pattern of one open file handle; see the module docstring.

    Fields (trio thread only, no awaits between reads and writes, no lock):
    ``_object`` the (id, version) last read, ``_next`` the furthest end of
    the sequential run, ``_last_block`` the furthest block entered,
    ``_window`` in bytes, ``_planned`` the block index up to which
    read-ahead has been arranged.
    """

    __slots__ = ("_object", "_next", "_last_block", "_window", "_planned")

    def __init__(self) -> None:
        self._object: tuple[str, str] | None = None
        self._next = 0
        self._last_block = -1
        self._window = 0
        self._planned = 0

    @property
    def window(self) -> int:
        """The current read-ahead window in bytes (0: no read-ahead)."""
        return self._window

    def observe(self, key: ObjectKey, offset: int, end: int, block_size: int,
                limit: int, slack: int) -> range:
        """Record the read ``[offset, end)``; the blocks read-ahead should cover now.

        The returned range excludes blocks already arranged; report how far
        they were arranged with ``planned()``.
        """
        last_block = (end - 1) // block_size
        this_object = (key.object_id, key.version)
        sequential = (self._object == this_object
                      and self._next - slack <= offset <= self._next + slack)
        if sequential:
            if self._window == 0:
                self._window = min(block_size, limit)
            elif last_block > self._last_block:
                self._window = min(self._window * 2, limit)
            self._next = max(self._next, end)
            self._last_block = max(self._last_block, last_block)
        else:
            self._object = this_object
            self._next = end
            self._last_block = last_block
            self._window = 0
            self._planned = 0
        if self._window == 0:
            return range(0)
        first = max(self._planned, -(-self._next // block_size))
        stop = min(-(-(self._next + self._window) // block_size),
                   -(-key.size // block_size))
        return range(first, stop)

    def planned(self, until: int) -> None:
        """Read-ahead has been arranged for every block before ``until``."""
        self._planned = max(self._planned, until)
