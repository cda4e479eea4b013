"""``statfs``: what ``df`` shows, from the user's quota, or a huge volume when there is none.

The portal reports usage and what is left (RFC 4331 on PROPFIND); with a
quota, "left" is the quota's rest, so ``df`` shows the quota as the size.
An administrator has no quota at all: the volume is then reported as one
petabyte, as network filesystems without a limit do, never as zero (which
makes desktops refuse to copy anything).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.support.portal_process import PortalProcess, running_portal
from tests.unit.vfs.graph import Mounted, open_filesystem
from tests.unit.vfs.truth import in_thread, mkdir, quota, upload

QUOTA = 16 << 20


@pytest.fixture
def quota_portal(tmp_path: Path) -> Iterator[PortalProcess]:
    with running_portal(tmp_path / "data", "--quota", "16M") as server:
        yield server


async def test_statfs_shows_the_quota(quota_portal: PortalProcess, tmp_path: Path) -> None:
    await in_thread(mkdir, quota_portal, "Stuff")
    await in_thread(upload, quota_portal, "Stuff/one.bin", b"\x01" * (1 << 20))
    await in_thread(upload, quota_portal, "Stuff/two.bin", b"\x02" * 12345)
    used, available = await in_thread(quota, quota_portal)
    assert used == (1 << 20) + 12345 and used + available == QUOTA
    async with open_filesystem(quota_portal, tmp_path / "cache") as mounted:
        stats = await mounted.fs.statfs()
    assert stats.block_size == 4096
    assert stats.blocks == QUOTA // 4096
    assert stats.blocks_free == available // 4096
    assert stats.files > 0 and stats.files_free > 0 and stats.name_max == 255


async def test_statfs_without_a_quota_follows_the_portal(sample: Mounted, sample_portal: PortalProcess) -> None:
    """No quota: the portal says what its disk has left, so that is what ``df`` shows free."""
    used, _ = await in_thread(quota, sample_portal)
    stats = await sample.fs.statfs()
    assert stats.blocks > stats.blocks_free > 0
    # total = used + available, each rounded down to blocks on its own
    assert abs((stats.blocks - stats.blocks_free) * stats.block_size - used) <= stats.block_size


async def test_statfs_of_an_unlimited_administrator(portal: PortalProcess, tmp_path: Path) -> None:
    async with open_filesystem(portal, tmp_path / "cache", user="root") as mounted:
        assert await mounted.backend.quota() is None  # the portal has no quota to tell
        stats = await mounted.fs.statfs()
    assert stats.blocks * stats.block_size == 1 << 50
    assert stats.blocks_free == stats.blocks


async def test_statfs_while_the_portal_is_away_keeps_the_last_known_quota(
        quota_portal: PortalProcess, tmp_path: Path, mock_clock: trio.testing.MockClock) -> None:
    """``df`` during an outage shows the quota it showed before, not a petabyte of free space."""
    mock_clock.rate = 1.0
    async with open_filesystem(quota_portal, tmp_path / "cache") as mounted:
        before = await mounted.fs.statfs()
        assert before.blocks == QUOTA // 4096
        quota_portal.kill()
        retries = mounted.backend.statistics().retries
        mock_clock.jump(31)  # past the quota's 30 s TTL: the next statfs asks the portal
        during = await mounted.fs.statfs()
        assert mounted.backend.statistics().retries > retries, "the second statfs never asked the portal"
    assert during == before
