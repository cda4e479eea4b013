"""A portal that stalls or disappears: bounded failures, and what was known keeps being served.

Two faults, both real: a stall is the real backend behind a delegating
object whose calls wait until the stall is lifted (a portal that stopped
answering and later recovers); a disappearance is the portal process
killed with SIGKILL.  In both, the filesystem must answer every request in
bounded time: from its listings and block cache when it can, with
``ETIMEDOUT`` or ``EIO`` when it cannot.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Awaitable, Sequence
from pathlib import Path

import pytest
import trio

from tests.support.portal_process import PortalProcess
from tests.unit.vfs.graph import open_filesystem
from tests.unit.vfs.truth import download, in_thread, mkdir, upload
from vfs.backends.base import Page, Path as RemotePath, Quota, RemoteEntry, SnapshotRef
from vfs.backends.ctera import CteraBackend, Timeouts
from vfs.backends.retry import RetryPolicy
from vfs.errors import VfsError
from vfs.filesystem import FsConfig
from vfs.inodes import ROOT_INODE


class Stalling:
    """The real backend, except that while stalled every call waits until the stall is lifted."""

    def __init__(self, backend: CteraBackend) -> None:
        self._backend = backend
        self._resume: trio.Event | None = None
        self.stalled_calls = 0

    def stall(self) -> None:
        self._resume = trio.Event()

    def lift(self) -> None:
        assert self._resume is not None
        self._resume.set()
        self._resume = None

    async def _gate(self) -> None:
        resume = self._resume
        if resume is not None:
            self.stalled_calls += 1
            await resume.wait()

    async def stat(self, path: RemotePath) -> RemoteEntry:
        await self._gate()
        return await self._backend.stat(path)

    async def list_page(self, path: RemotePath, start: int, limit: int) -> Page:
        await self._gate()
        return await self._backend.list_page(path, start, limit)

    async def read(self, entry: RemoteEntry, offset: int, length: int) -> bytes:
        await self._gate()
        return await self._backend.read(entry, offset, length)

    async def read_together(self, entries: Sequence[RemoteEntry]) -> dict[str, bytes]:
        await self._gate()
        return await self._backend.read_together(entries)

    async def list_snapshots(self, path: RemotePath) -> list[SnapshotRef]:
        await self._gate()
        return await self._backend.list_snapshots(path)

    async def quota(self) -> Quota | None:
        await self._gate()
        return await self._backend.quota()

    async def aclose(self) -> None:
        await self._backend.aclose()


TIMEOUT = 0.5


async def expect_errno(code: int, call: Awaitable[object]) -> float:
    """Await ``call``, which must fail with ``code``; how long it took."""
    started = trio.current_time()
    with pytest.raises(VfsError) as caught:
        await call
    assert caught.value.errno == code, caught.value
    return trio.current_time() - started


async def test_a_stalled_portal_fails_requests_in_bounded_time(
    sample_portal: PortalProcess, tmp_path: Path
) -> None:
    config = FsConfig(request_timeout=TIMEOUT)
    async with open_filesystem(sample_portal, tmp_path / "cache", config, wrap=Stalling) as mounted:
        portal = mounted.wrapped(Stalling)
        root = await mounted.inodes(ROOT_INODE)
        documents = await mounted.inode("Documents")
        report = await mounted.inode("Documents/Report.txt")
        budget = await mounted.inode("Documents/Budget.csv")
        await mounted.names(documents)
        expected = await mounted.read_all(report)

        portal.stall()
        # what is known is answered at once, without the portal
        with trio.fail_after(TIMEOUT / 2):
            assert await mounted.inode("Documents/Report.txt") == report
            assert (await mounted.resolve("Documents/Nothing here")).attributes is None
            assert (await mounted.fs.getattr(report)).size == len(expected)
            assert await mounted.read_all(report) == expected
            assert "Budget.csv" in await mounted.names(documents)
            projects = await mounted.inode("Projects")
            assert projects == root["Projects"]
        assert portal.stalled_calls == 0

        # what needs the portal fails with ETIMEDOUT after request_timeout, not later
        assert await expect_errno(errno.ETIMEDOUT, mounted.fs.lookup(projects, "Apollo")) < 2 * TIMEOUT
        assert await expect_errno(errno.ETIMEDOUT, mounted.fs.opendir(root["Photos"])) < 2 * TIMEOUT
        assert await expect_errno(errno.ETIMEDOUT, mounted.fs.opendir(root[".snapshots"])) < 2 * TIMEOUT
        opened = await mounted.fs.open(budget, os.O_RDONLY)
        assert await expect_errno(errno.ETIMEDOUT, mounted.fs.read(opened.handle, 0, 100)) < 2 * TIMEOUT
        assert await expect_errno(errno.ETIMEDOUT, mounted.fs.statfs()) < 2 * TIMEOUT
        assert portal.stalled_calls == 5

        # the portal answers again: the very same requests succeed, nothing was left stuck
        portal.lift()
        truth = await in_thread(download, sample_portal, "Documents/Budget.csv")
        assert await mounted.fs.read(opened.handle, 0, 1 << 20) == truth
        await mounted.fs.release(opened.handle)
        assert (await mounted.fs.lookup(projects, "Apollo")).attributes is not None
        assert len(await mounted.names(root["Photos"])) == 12
        assert len(await mounted.names(root[".snapshots"])) == 2
        assert (await mounted.fs.statfs()).blocks > 0
        assert mounted.fs.statistics()["handles"] == 0


async def test_a_vanished_portal_still_serves_what_was_known(portal: PortalProcess, tmp_path: Path) -> None:
    await in_thread(mkdir, portal, "Docs")
    await in_thread(mkdir, portal, "Docs/Sub")
    await in_thread(mkdir, portal, "Elsewhere")
    files = {
        "Docs/a.txt": b"alpha " * 5000,
        "Docs/b.txt": b"bravo, never read before the portal went away\n",
        "Docs/Sub/c.txt": b"charlie\n",
        "Elsewhere/d.txt": b"delta\n",
    }
    for path, content in files.items():
        await in_thread(upload, portal, path, content)
    ttl = 0.2
    config = FsConfig(listing_ttl=ttl, entry_timeout=ttl, attr_timeout=ttl, request_timeout=10)
    retry = RetryPolicy(max_attempts=3, budget=1.0, first_delay=0.05)  # give up on a dead portal quickly
    async with open_filesystem(
        portal, tmp_path / "cache", config, retry=retry, timeouts=Timeouts(connect=1, read=2)
    ) as mounted:
        docs = await mounted.inode("Docs")
        listed = await mounted.inodes(docs)
        assert set(listed) == {"a.txt", "b.txt", "Sub"}
        c = await mounted.inode("Docs/Sub/c.txt")  # known by lookup only: Sub was never listed
        assert await mounted.read_all(listed["a.txt"]) == files["Docs/a.txt"]
        assert await mounted.read_all(c) == files["Docs/Sub/c.txt"]

        portal.kill()
        await trio.sleep(ttl * 1.5)  # every listing and attribute is now past its TTL
        with trio.fail_after(20):
            # names: the last listing answers, positive and negative
            assert await mounted.inode("Docs/a.txt") == listed["a.txt"]
            assert await mounted.inode("Docs/Sub/c.txt") == c
            assert (await mounted.resolve("Docs/zulu.txt")).attributes is None
            again = await mounted.inodes(docs, deliver=False)
            assert again == listed
            # attributes and blocks already known
            assert (await mounted.fs.getattr(listed["a.txt"])).size == len(files["Docs/a.txt"])
            assert await mounted.read_all(listed["a.txt"]) == files["Docs/a.txt"]
            assert await mounted.read_all(c) == files["Docs/Sub/c.txt"]
            # what was never fetched cannot be made up: a clean EIO, in bounded time
            await expect_errno(errno.EIO, mounted.read_all(listed["b.txt"]))
            await expect_errno(errno.EIO, mounted.resolve("Elsewhere"))
            assert (await mounted.fs.statfs()).blocks > 0  # no quota known: still an answer
        assert mounted.fs.statistics()["handles"] == 0
