"""Reading the next FUSE request at once when the kernel has one waiting.

Why.  Before every request, pyfuse3's loop waits for ``/dev/fuse`` to turn
readable through trio: an ``epoll_ctl`` to arm the descriptor, a trip
through the scheduler's ``epoll_wait``, a wake-up and a reschedule, plus a
lock.  When a reader works through a tree of small files the kernel always
has the next requests queued (each file is an ``OPEN``, a ``READ``, a
``FLUSH`` and a ``RELEASE``), so that wait never waits: it is pure
overhead, about a fifth of the daemon's CPU for such a tree
(docs/PERFORMANCE.md).

How.  pyfuse3 3.5 looks its wait function, ``_wait_fuse_readable``, up in
its module's namespace on every request, and treats it as a black box: it
returns True when the descriptor may be read, False when the loop must end.
:func:`install_request_wait` puts a wait there that first asks ``poll()``
with a zero timeout, one system call, and returns at once if a request is
waiting.  Otherwise, and after every ``FAIR_SHARE`` requests in a row read
that way (so a busy mount still lets its uploads, timers and HTTP traffic
run), it calls pyfuse3's own wait, which keeps everything pyfuse3 does
around it: one task at a time on the descriptor, the count of idle tasks
by which it starts and ends its request tasks, and the end of the session.

Why it is safe.  The descriptor is blocking, and a read with nothing to read
would stop the daemon's only event loop.  A request seen by ``poll()`` is
read by the same task before anything else runs, so no other task can take
it first.  A task woken by pyfuse3's wait may find that a task which did
not wait took the request in between; it asks ``poll()`` again and,
finding nothing, waits again.  ``poll()`` also reports a dead connection
(after an unmount from outside), which pyfuse3's read then turns into the
end of the loop, as before.

pyfuse3 keeps the descriptor's number to itself; it is this process's one
open FUSE device.  Anything unexpected (another pyfuse3 version, no such
function, not exactly one such descriptor) leaves pyfuse3's own wait in
place: only speed depends on this.  :func:`remove_request_wait` puts it
back before ``pyfuse3.close`` closes the descriptor.
"""

from __future__ import annotations

import logging
import os
import select
import stat
from collections.abc import Awaitable, Callable

import pyfuse3

__all__ = ["FAIR_SHARE", "RequestWait", "fuse_descriptors", "install_request_wait", "remove_request_wait"]

log = logging.getLogger(__name__)

#: Requests one task reads in a row without yielding to the scheduler.
FAIR_SHARE = 8

#: The pyfuse3 versions whose loop is known to call the wait as described.
_KNOWN_VERSIONS = ("3.5.",)

_HOOK = "_wait_fuse_readable"
_PYFUSE3_WAIT: Callable[[], Awaitable[bool]] | None = getattr(pyfuse3, _HOOK, None)
_FUSE_DEVICE = os.makedev(10, 229)


def install_request_wait() -> RequestWait | None:
    """Replace pyfuse3's wait for the next request, once ``pyfuse3.init`` has run; None if not done."""
    remove_request_wait()
    if _PYFUSE3_WAIT is None or not pyfuse3.__version__.startswith(_KNOWN_VERSIONS):
        log.debug("pyfuse3 %s: its own request loop is kept", pyfuse3.__version__)
        return None
    try:
        devices = fuse_descriptors()
    except OSError as exc:  # no /proc
        log.debug("cannot list this process's descriptors (%s): pyfuse3's request loop is kept", exc)
        return None
    if len(devices) != 1:
        log.debug("found %d FUSE device descriptors, not one: pyfuse3's request loop is kept", len(devices))
        return None
    waiting = RequestWait(devices[0], _PYFUSE3_WAIT)
    setattr(pyfuse3, _HOOK, waiting.wait)
    log.debug("FUSE requests already waiting are read without a trip through epoll")
    return waiting


def remove_request_wait() -> None:
    """Put pyfuse3's own wait back (before its descriptor is closed: its number may be reused)."""
    if _PYFUSE3_WAIT is not None:
        setattr(pyfuse3, _HOOK, _PYFUSE3_WAIT)


def fuse_descriptors() -> list[int]:
    """This process's open descriptors of the FUSE device (character device 10:229)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            status = os.stat(int(name))
        except OSError:  # the descriptor of the listing itself, closed by now
            continue
        if stat.S_ISCHR(status.st_mode) and status.st_rdev == _FUSE_DEVICE:
            found.append(int(name))
    return found


class RequestWait:
    """The wait pyfuse3's request tasks call before each read.

    Guarded by: trio's single thread — ``poll`` and the read that follows
    happen with no checkpoint between them.
    """

    def __init__(self, fd: int, wait_readable: Callable[[], Awaitable[bool]]) -> None:
        """``wait_readable``: pyfuse3's own wait (tests give one for a pipe)."""
        self.fd = fd
        self._wait_readable = wait_readable
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)
        self._in_a_row = 0
        self.immediate = 0  # requests read without waiting (for tests and profiles)

    def _waiting(self) -> bool:
        """A request (or the connection's end) is there to be read now."""
        return bool(self._poll.poll(0))

    async def wait(self) -> bool:
        if self._in_a_row < FAIR_SHARE and self._waiting():
            self._in_a_row += 1
            self.immediate += 1
            return True
        self._in_a_row = 0
        while await self._wait_readable():
            if self._waiting():
                return True
        return False
