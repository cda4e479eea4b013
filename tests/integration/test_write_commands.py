"""The ``portalfs`` commands of the write side, end to end: the real console script against a real mount.

``status`` (pending uploads with sizes, text and ``--json``), ``ls --deleted``
and ``undelete`` (the portal's recycle bin), ``cp`` (a copy made by the
portal, no content through this host), ``unmount`` (waiting for pending
uploads, or leaving them in the journal with ``--no-wait``), and SIGTERM to
the daemon (systemd's stop), which must drain like ``unmount``.  What the
portal holds is checked through an independent client (``PortalView``) and
the portal's own request log, never through the mount.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.support import portal_http
from tests.support.mount_process import is_mounted, mounted
from tests.support.portal_process import PortalProcess
from tests.support.portal_view import PortalView, portal_view
from tests.support.portalfs_cli import HOLD_BACK, content, pending_uploads, succeeds
from tests.support.request_log import RequestLog

pytestmark = pytest.mark.fuse


def write_files(root: Path, files: dict[str, bytes]) -> None:
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)


def put_before_mounting(portal: PortalProcess, files: dict[str, bytes]) -> None:
    with portal_view(portal) as view:
        for name, data in files.items():
            portal_http.put(view.http, portal, f"My Files/{name}", data)


def files_on(view: PortalView) -> dict[str, bytes]:
    return {path: data for path, data in view.tree().items() if data is not None}


FILES = {"notes.txt": b"pending for a while\n", "docs/report.bin": content(1, 300_000)}


def test_status_shows_pending_uploads_with_sizes_until_they_are_sent(portal: PortalProcess, tmp_path: Path) -> None:
    with portal_view(portal) as view, mounted(portal, tmp_path / "mnt", options=[HOLD_BACK]) as mount:
        write_files(mount.mountpoint, FILES)

        assert pending_uploads(mount.mountpoint) == {path: len(data) for path, data in FILES.items()}
        text = succeeds("status", mount.mountpoint)
        assert "Uploads: 2 pending" in text, text
        lines = {line.split()[-1]: line for line in text.splitlines() if line.startswith("  ")}
        assert "20 B" in lines["notes.txt"] and "293.0 KiB" in lines["docs/report.bin"], text
        assert files_on(view) == {}

        for relative in FILES:  # fsync sends a file now
            with open(mount.mountpoint / relative, "r+b") as file:
                os.fsync(file.fileno())
        assert files_on(view) == FILES

        assert pending_uploads(mount.mountpoint) == {}
        assert "Uploads: nothing pending" in succeeds("status", mount.mountpoint)


def test_ls_deleted_and_undelete_bring_back_the_same_file(portal: PortalProcess, tmp_path: Path) -> None:
    put_before_mounting(portal, {"keep.txt": b"do not lose me\n"})
    with portal_view(portal) as view, mounted(portal, tmp_path / "mnt", options=["upload_delay=0.2"]) as mount:
        file_id = view.file_id("keep.txt")
        os.unlink(mount.mountpoint / "keep.txt")
        assert not (mount.mountpoint / "keep.txt").exists()  # gone here (the kernel may remember that)
        assert not view.exists("keep.txt")
        assert "keep.txt" in view.deleted_names()

        listing = succeeds("ls", "--deleted", mount.mountpoint)
        assert [line.split()[-1] for line in listing.splitlines()] == ["keep.txt"], listing

        succeeds("undelete", mount.mountpoint / "keep.txt")
        assert view.file_id("keep.txt") == file_id
        assert view.read("keep.txt") == b"do not lose me\n"
        assert (mount.mountpoint / "keep.txt").read_bytes() == b"do not lose me\n"  # at once, as after cp
        assert "keep.txt" in os.listdir(mount.mountpoint)


def test_cp_copies_on_the_portal_without_moving_content(portal: PortalProcess, tmp_path: Path) -> None:
    data = content(2, 2 << 20)
    put_before_mounting(portal, {"source.bin": data})
    with portal_view(portal) as view, mounted(portal, tmp_path / "mnt", options=["upload_delay=0.2"]) as mount:
        (mount.mountpoint / "folder").mkdir()
        requests = RequestLog(portal)
        requests.mark()

        succeeds("cp", mount.mountpoint / "source.bin", mount.mountpoint / "copy.bin")
        succeeds("cp", mount.mountpoint / "source.bin", mount.mountpoint / "folder")  # into a folder, as cp does

        logged = requests.since()
        assert requests.content_bytes() == 0, [r for r in logged if r.is_content]
        assert not [r for r in logged if "/upload/" in r.path], logged
        for copy in ("copy.bin", "folder/source.bin"):
            assert view.read(copy) == data
            assert view.file_id(copy) != view.file_id("source.bin")
        assert view.uploads_of("source.bin") == 1
        # Visible at once, although the command itself looked the new name up before copying.
        assert (mount.mountpoint / "copy.bin").read_bytes() == data
        assert (mount.mountpoint / "folder" / "source.bin").read_bytes() == data


def test_unmount_waits_until_pending_uploads_are_on_the_portal(portal: PortalProcess, tmp_path: Path) -> None:
    files = {**FILES, "big.bin": content(3, 16 << 20)}
    with portal_view(portal) as view, mounted(portal, tmp_path / "mnt", options=[HOLD_BACK]) as mount:
        write_files(mount.mountpoint, files)
        assert files_on(view) == {}

        succeeds("unmount", mount.mountpoint)
        assert files_on(view) == files  # no waiting here: unmount returned once they were sent
        assert not is_mounted(mount.mountpoint)
        assert mount.process.wait(timeout=20) == 0


def test_unmount_no_wait_leaves_uploads_for_the_next_mount(portal: PortalProcess, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with portal_view(portal) as view:
        with mounted(portal, tmp_path / "mnt", options=[HOLD_BACK], cache_dir=cache) as mount:
            write_files(mount.mountpoint, FILES)
            succeeds("unmount", "--no-wait", mount.mountpoint)
            assert not is_mounted(mount.mountpoint)
            assert mount.process.wait(timeout=20) == 0
        assert files_on(view) == {}  # left in the journal

        with mounted(portal, tmp_path / "mnt", options=[HOLD_BACK], cache_dir=cache):
            view.wait_for(lambda: files_on(view) == FILES, what="the journal's uploads after the remount")


def test_sigterm_unmounts_drains_and_exits_0(portal: PortalProcess, tmp_path: Path) -> None:
    files = {**FILES, "big.bin": content(4, 16 << 20)}
    with portal_view(portal) as view, mounted(portal, tmp_path / "mnt", options=[HOLD_BACK]) as mount:
        write_files(mount.mountpoint, files)
        assert files_on(view) == {}

        mount.process.send_signal(signal.SIGTERM)  # what systemd sends to stop portalfs@.service
        assert mount.process.wait(timeout=60) == 0, mount.log()[-3000:]
        assert not is_mounted(mount.mountpoint)
        assert files_on(view) == files
        assert "all uploads finished" in mount.log()
