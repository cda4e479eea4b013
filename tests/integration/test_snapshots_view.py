"""The ``.snapshots`` view through a real mount: older bytes, read-only, own inodes."""

from __future__ import annotations

import errno
import os
import re

import httpx
import pytest

from tests.support.mount_process import MountProcess

pytestmark = pytest.mark.fuse

LABEL = re.compile(r"^@GMT-\d{4}\.\d{2}\.\d{2}-\d{2}\.\d{2}\.\d{2}$")


def _snapshot_dirs(mount: MountProcess, relative: str = "") -> list[str]:
    return sorted(os.listdir(mount.mountpoint / relative / ".snapshots"))


def test_root_lists_snapshots_named_for_samba(sample_mount: MountProcess) -> None:
    labels = _snapshot_dirs(sample_mount)
    assert len(labels) >= 2
    assert all(LABEL.match(label) for label in labels)


def test_snapshot_shows_older_bytes_of_a_changed_file(sample_mount: MountProcess, webdav: httpx.Client) -> None:
    live = (sample_mount.mountpoint / "Documents" / "Report.txt").read_bytes()
    oldest = _snapshot_dirs(sample_mount)[0]
    old = (sample_mount.mountpoint / ".snapshots" / oldest / "Documents" / "Report.txt").read_bytes()
    assert old.startswith(b"Quarterly report, first draft")
    assert live.startswith(b"Quarterly report, final")
    assert old != live


def test_snapshot_keeps_files_deleted_since(sample_mount: MountProcess) -> None:
    oldest = _snapshot_dirs(sample_mount)[0]
    assert not (sample_mount.mountpoint / "Documents" / "Old notes.txt").exists()
    old_notes = sample_mount.mountpoint / ".snapshots" / oldest / "Documents" / "Old notes.txt"
    assert old_notes.read_bytes().startswith(b"Notes that will be deleted")


def test_snapshots_resolve_in_every_folder_but_are_listed_only_at_the_root(sample_mount: MountProcess) -> None:
    documents = sample_mount.mountpoint / "Documents"
    assert ".snapshots" not in os.listdir(documents)
    labels = _snapshot_dirs(sample_mount, "Documents")
    assert labels == _snapshot_dirs(sample_mount)
    inside = os.listdir(documents / ".snapshots" / labels[0])
    assert "Report.txt" in inside and "Old notes.txt" in inside


def test_everything_under_snapshots_is_read_only(sample_mount: MountProcess) -> None:
    label = _snapshot_dirs(sample_mount)[0]
    snapshot = sample_mount.mountpoint / ".snapshots" / label
    for attempt in (
        lambda: (snapshot / "Documents" / "Report.txt").write_bytes(b"x"),
        lambda: (snapshot / "Documents" / "new.txt").write_bytes(b"x"),
        lambda: (snapshot / "Documents" / "newdir").mkdir(),
        lambda: (snapshot / "Documents" / "Report.txt").unlink(),
        lambda: (sample_mount.mountpoint / ".snapshots" / "mine").mkdir(),
    ):
        with pytest.raises(OSError) as raised:
            attempt()
        assert raised.value.errno == errno.EROFS
    mode = (snapshot / "Documents" / "Report.txt").stat().st_mode
    assert mode & 0o222 == 0


def test_snapshot_items_have_their_own_inodes(sample_mount: MountProcess) -> None:
    live = (sample_mount.mountpoint / "Documents" / "Budget.csv").stat()
    label = _snapshot_dirs(sample_mount)[-1]
    old = (sample_mount.mountpoint / ".snapshots" / label / "Documents" / "Budget.csv").stat()
    assert live.st_ino != old.st_ino
    assert live.st_size == old.st_size  # unchanged content, still a distinct inode
