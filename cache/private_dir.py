"""Claiming a private directory, and opening what is in it off the event loop.

The disk tier of the block cache and the staging store each keep their state
in a directory that must be as trustworthy as the files in it: mode 0700,
owned by us, and used by one process at a time (an exclusive ``flock`` on
its ``lock`` file, held until the owner closes).  :func:`claim` does all of
that in one place.

Opening such a directory (SQLite, recovery scans) blocks, so it runs in a
worker thread; :func:`open_off_loop` makes sure that if the caller is
cancelled meanwhile, what the thread opened is closed rather than leaked
with its lock still held.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import trio

log = logging.getLogger("cache")

LOCK_FILE = "lock"

T = TypeVar("T")


class CacheDirectoryError(Exception):
    """A cache or staging directory cannot be used (another owner, in use, unreadable)."""


def claim(path: Path, *, what: str, subdirs: Iterable[str] = ()) -> int:
    """Create or check ``path`` (and ``subdirs``) mode 0700, lock it; return the lock's fd.

    Closing the returned descriptor releases the lock.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise CacheDirectoryError(f"{what} path {path} is not a directory")
    if st.st_uid != os.geteuid():
        raise CacheDirectoryError(f"{what} directory {path} belongs to uid {st.st_uid}, not to us")
    if stat.S_IMODE(st.st_mode) != 0o700:
        log.warning("%s directory %s had mode %o; setting 0700", what, path, stat.S_IMODE(st.st_mode))
        path.chmod(0o700)
    for name in subdirs:
        sub = path / name
        sub.mkdir(mode=0o700, exist_ok=True)
        if stat.S_IMODE(sub.stat().st_mode) != 0o700:
            sub.chmod(0o700)
    lock_fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        raise CacheDirectoryError(f"{what} directory {path} is in use by another process") from None
    return lock_fd


async def open_off_loop(opener: Callable[[], T], close: Callable[[T], None]) -> T:
    """Run ``opener`` in a worker thread; if we are cancelled meanwhile, ``close`` its result.

    The thread is not abandonable: a cancelled caller still waits for it to
    finish, so that nothing it opened (and no lock it took) is left behind.
    """
    opened: list[T] = []

    def run() -> None:
        opened.append(opener())

    try:
        await trio.to_thread.run_sync(run)
    except BaseException:
        if opened:
            close(opened[0])
        raise
    return opened[0]
