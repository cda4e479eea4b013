"""Errors of the filesystem model, and the one mapping from backend errors to errno.

``VfsError`` carries the errno the kernel should see; the mount layer turns it
into ``FUSEError`` and treats every other exception as a bug (logged, EIO).
Backend errors become ``VfsError`` here and nowhere else, in
:func:`backend_errors`, and so do the local staging area's (full disk, damaged
record) in :func:`staging_errors`, so each failure has exactly one errno
wherever it happens.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from vfs.backends import base

log = logging.getLogger("vfs")


class VfsError(Exception):
    """Fail the current request with ``errno``."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message or errno.errorcode.get(code, str(code)))
        self.errno = code


_ERRNO: tuple[tuple[type[base.BackendError], int], ...] = (
    (base.NotFound, errno.ENOENT),
    (base.NotADirectory, errno.ENOTDIR),
    (base.IsADirectory, errno.EISDIR),
    (base.Exists, errno.EEXIST),
    (base.PermissionDenied, errno.EACCES),
    (base.AuthenticationFailed, errno.EACCES),
    (base.ReadOnly, errno.EROFS),
    (base.QuotaExceeded, errno.EDQUOT),
    (base.NameTooLong, errno.ENAMETOOLONG),
    (base.InvalidName, errno.EINVAL),
    (base.StaleVersion, errno.ESTALE),
    (base.Unsupported, errno.ENOTSUP),
    (base.Unreachable, errno.EIO),
    (base.Transient, errno.EIO),
    (base.ProtocolError, errno.EIO),
)


def errno_of(error: base.BackendError) -> int:
    for kind, code in _ERRNO:
        if isinstance(error, kind):
            return code
    return errno.EIO


#: The staging area's own errnos that reach a writer as they are; any other OSError is EIO.
_LOCAL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EIO)


def errno_for(error: BaseException | None) -> int:
    """The errno of any failure (logs nothing): a ``VfsError``'s own, a backend error's by
    its kind, the staging area's ``OSError`` as :func:`staging_errors` maps it; EIO for
    anything else, or when nothing is known."""
    if isinstance(error, VfsError):
        return error.errno
    if isinstance(error, base.BackendError):
        return errno_of(error)
    if isinstance(error, OSError) and error.errno in _LOCAL_ERRNOS:
        return error.errno
    return errno.EIO


@contextmanager
def backend_errors(what: str) -> Iterator[None]:
    """Turn a backend failure during ``what`` into a VfsError (logging the ones users should hear of)."""
    try:
        yield
    except base.BackendError as exc:
        code = errno_of(exc)
        if code in (errno.EIO, errno.ESTALE):
            log.warning("%s: %s", what, exc or type(exc).__name__)
        raise VfsError(code, f"{what}: {exc}") from exc


@contextmanager
def staging_errors(what: str) -> Iterator[None]:
    """The staging area's failures during ``what``: a full disk is ENOSPC, a record gone or
    damaged EIO; a failed fetch of the base version (the portal's) as :func:`backend_errors`."""
    try:
        with backend_errors(what):
            yield
    except KeyError as exc:
        raise VfsError(errno.EIO, f"{what}: the staged copy is gone ({exc})") from exc
    except OSError as exc:
        log.error("%s: %s", what, exc)
        raise VfsError(errno_for(exc), f"{what}: {exc}") from exc
