"""Reading a file with a partial local edit whose portal version changed underneath.

The untouched parts of a partially edited file still read the base version
from the portal.  Once the portal holds another version, those parts cannot
be read any more: the reader gets ESTALE, once — not a loop of refetches
until the request times out.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import trio

from tests.support.portal_process import PortalProcess
from tests.unit.vfs.graph import NEVER, open_writable, refused
from tests.unit.vfs.truth import in_thread, upload
from vfs.backends.ctera.counters import RequestKind

MiB = 1 << 20


async def test_a_base_changed_under_a_partial_edit_fails_the_read_once(portal: PortalProcess,
                                                                        tmp_path: Path) -> None:
    await in_thread(upload, portal, "doc.bin", os.urandom(3 * MiB))
    async with open_writable(portal, tmp_path, delay=NEVER) as drive:
        handle = await drive.open_file("doc.bin", os.O_RDWR)
        assert await drive.fs.write(handle, 0, b"0123456789") == 10  # staged; the rest is still the base
        await in_thread(upload, portal, "doc.bin", os.urandom(3 * MiB))
        reads_before = drive.backend.statistics().count(RequestKind.READ)
        with trio.fail_after(15):
            assert await refused(drive.fs.read(handle, 2 * MiB, 4096)) == errno.ESTALE
        assert drive.backend.statistics().count(RequestKind.READ) - reads_before <= 3
        assert (await drive.fs.read(handle, 0, 10)) == b"0123456789"  # the edit itself is still there
        await drive.fs.release(handle)
