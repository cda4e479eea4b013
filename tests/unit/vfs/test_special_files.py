"""Links, devices and pipes: the portal stores none, so making one is refused — with the
errno of a filesystem that has none (EPERM), or EROFS where nothing can be made at all."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from tests.support.portal_process import PortalProcess
from tests.unit.vfs.graph import open_filesystem, open_writable
from vfs.errors import VfsError
from vfs.inodes import ROOT_INODE


def refusal(request: object) -> int:
    with pytest.raises(VfsError) as raised:
        request()  # type: ignore[operator]
    return raised.value.errno


async def test_a_writable_folder_refuses_them_with_eperm(portal: PortalProcess, tmp_path: Path) -> None:
    async with open_writable(portal, tmp_path) as drive:
        folder = await drive.mkdir("plain")
        assert refusal(lambda: drive.fs.refuse_special(folder)) == errno.EPERM
        assert refusal(lambda: drive.fs.refuse_special(ROOT_INODE)) == errno.EPERM


async def test_a_read_only_mount_refuses_them_with_erofs(portal: PortalProcess, tmp_path: Path) -> None:
    async with open_filesystem(portal, tmp_path / "cache") as drive:
        assert refusal(lambda: drive.fs.refuse_special(ROOT_INODE)) == errno.EROFS
