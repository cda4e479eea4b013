"""Browsing and reading through a real kernel mount, checked against the portal itself."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import portal_bytes
from tests.support.mount_process import MountProcess, mounted
from tests.support.portal_process import PortalProcess

pytestmark = pytest.mark.fuse


def test_ls_l_shows_the_cloud_folder(sample_mount: MountProcess) -> None:
    result = subprocess.run(["ls", "-l", str(sample_mount.mountpoint)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    names = {line.split(maxsplit=8)[-1] for line in result.stdout.splitlines()[1:]}
    assert {"Documents", "Photos", "Projects", "Many files", "Large files"} <= names
    assert ".snapshots" not in names  # hidden from listings (ls -a shows it at the root)
    every = os.listdir(sample_mount.mountpoint)
    assert ".snapshots" in every


def test_stat_matches_the_portal(sample_mount: MountProcess, webdav: httpx.Client) -> None:
    report = sample_mount.mountpoint / "Documents" / "Report.txt"
    info = report.stat()
    head = webdav.head("Documents/Report.txt")
    assert stat.S_ISREG(info.st_mode)
    assert info.st_size == int(head.headers["content-length"])
    assert info.st_mode & 0o777 == 0o644
    folder = (sample_mount.mountpoint / "Documents").stat()
    assert stat.S_ISDIR(folder.st_mode)
    assert info.st_uid == os.getuid()


def test_find_sees_every_file(sample_mount: MountProcess) -> None:
    result = subprocess.run(["find", str(sample_mount.mountpoint / "Projects"), "-type", "f"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    found = sorted(Path(p).relative_to(sample_mount.mountpoint).as_posix() for p in result.stdout.split())
    assert found == ["Projects/Apollo/Design/diagram.png", "Projects/Apollo/Design/spec.md"]


def test_cat_returns_the_portal_bytes(sample_mount: MountProcess, webdav: httpx.Client) -> None:
    for relative in ("Documents/Report.txt", "Documents/q1 & q2 résumé #1.txt", "Photos/IMG_1003.png"):
        through_mount = subprocess.run(["cat", str(sample_mount.mountpoint / relative)], capture_output=True,
                                       timeout=60, check=True).stdout
        assert through_mount == portal_bytes(webdav, relative.replace("&", "%26").replace("#", "%23"))


def test_large_file_sha256_and_dd_at_offsets(sample_mount: MountProcess, webdav: httpx.Client) -> None:
    relative = "Large files/large-2.bin"
    expected = portal_bytes(webdav, relative)
    path = sample_mount.mountpoint / relative
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(expected).hexdigest()
    rng = random.Random(7)
    for _ in range(12):
        block = rng.choice([1, 512, 4096, 65536])
        skip = rng.randrange(0, len(expected) // block)
        result = subprocess.run(["dd", f"if={path}", f"bs={block}", f"skip={skip}", "count=3", "status=none"],
                                capture_output=True, timeout=60, check=True)
        assert result.stdout == expected[skip * block : (skip + 3) * block]


def test_cmp_agrees_with_a_local_copy(sample_mount: MountProcess, webdav: httpx.Client, tmp_path: Path) -> None:
    local = tmp_path / "copy.bin"
    local.write_bytes(portal_bytes(webdav, "Large files/large-1.bin"))
    result = subprocess.run(["cmp", str(local), str(sample_mount.mountpoint / "Large files/large-1.bin")],
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_reading_past_the_end_and_a_folder(sample_mount: MountProcess) -> None:
    path = sample_mount.mountpoint / "Documents" / "Budget.csv"
    size = path.stat().st_size
    with open(path, "rb") as file:
        file.seek(size + 100)
        assert file.read(10) == b""
    with pytest.raises(IsADirectoryError):
        open(sample_mount.mountpoint / "Documents", "rb").close()


def test_a_read_only_mount_refuses_every_change(sample_portal: PortalProcess, webdav: httpx.Client,
                                                tmp_path: Path) -> None:
    """``-o ro``: nothing is staged, nothing reaches the portal (the sample tree must stay as it is)."""
    before = {name: portal_bytes(webdav, f"Documents/{name}") for name in ("Report.txt", "Budget.csv")}
    with mounted(sample_portal, tmp_path / "ro", options=["ro"]) as mount:
        documents = mount.mountpoint / "Documents"
        changes = [
            lambda: (documents / "new.txt").write_text("x"),
            lambda: (documents / "Report.txt").write_text("x"),
            lambda: os.mkdir(documents / "folder"),
            lambda: os.unlink(documents / "Budget.csv"),
            lambda: os.rename(documents / "Budget.csv", documents / "b.csv"),
            lambda: os.truncate(documents / "Report.txt", 0),
        ]
        for change in changes:
            with pytest.raises(OSError) as raised:
                change()
            assert raised.value.errno == errno.EROFS
        assert (documents / "Report.txt").read_bytes().startswith(b"Quarterly report")
        assert "new.txt" not in os.listdir(documents)
    # Checked on the portal once the mount is gone: an unmount's drain would have sent anything staged.
    assert {name: portal_bytes(webdav, f"Documents/{name}") for name in before} == before
    for name in ("new.txt", "folder", "b.csv"):
        assert webdav.head(f"Documents/{name}").status_code == 404, name


def test_missing_names_are_enoent(sample_mount: MountProcess) -> None:
    with pytest.raises(FileNotFoundError):
        (sample_mount.mountpoint / "Documents" / "no such file").stat()
    with pytest.raises(FileNotFoundError):
        (sample_mount.mountpoint / "no such folder" / "x").stat()


def test_statfs_answers(sample_mount: MountProcess) -> None:
    info = os.statvfs(sample_mount.mountpoint)
    assert info.f_bsize > 0 and info.f_blocks > 0
    assert info.f_namemax == 255


def test_the_kernel_reads_ahead_a_whole_fuse_request(sample_mount: MountProcess) -> None:
    device = os.stat(sample_mount.mountpoint).st_dev
    knob = Path(f"/sys/class/bdi/{os.major(device)}:{os.minor(device)}/read_ahead_kb")
    # Only root can raise a mount's read-ahead (to 1 MiB); others keep the kernel's 128 KiB.
    assert knob.read_text().strip() == ("1024" if os.geteuid() == 0 else "128")
