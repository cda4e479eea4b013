"""What the running kernel's FUSE does that the mount's choices depend on.

Write-only handles are opened ``direct_io`` (``FsConfig.direct_writes``):
their writes then reach the daemon straight from the writer's buffer,
instead of first being copied into page-cache pages of the mounted file,
which the writer never reads (measured: docs/PERFORMANCE.md).  That is only
coherent where a direct write drops the pages *other* handles of the file
have cached for the range it writes; otherwise a reader that had the file
open would keep seeing the old bytes.  Linux does so since 6.6 ("fuse:
invalidate page cache pages before direct write"); before that the mount
keeps every write buffered.  One race remains on kernels without the later
"fuse: Invalidate the page cache after FOPEN_DIRECT_IO write" (after 6.18,
backported to some stable series): a read that lands *during* the write can
cache the old bytes again.  The mount bounds that to the handles already
open: after a direct write the next open of the file does not keep the
page cache (``vfs/writing.py``).  tests/integration checks the behaviour
itself on the kernel the tests run on.
"""

from __future__ import annotations

import os
import re

__all__ = ["direct_writes_are_coherent"]

#: The first release whose direct writes drop other handles' cached pages.
COHERENT_DIRECT_WRITES = (6, 6)


def direct_writes_are_coherent(release: str | None = None) -> bool:
    """Whether the kernel (``release`` as in ``uname -r``, default this one)
    keeps cached pages coherent with ``direct_io`` writes."""
    found = re.match(r"(\d+)\.(\d+)", release if release is not None else os.uname().release)
    return found is not None and (int(found[1]), int(found[2])) >= COHERENT_DIRECT_WRITES
