"""Every POSIX write operation through a real kernel mount, checked on the portal's side.

What a program does to files in the mount — create, append, truncate, write
in the middle or past the end, mkdir/rmdir/unlink/rename, set times, copy
trees with ``cp -a``/``rsync -a``/``tar x``, lock — must end up as the same
bytes and names *on the portal*, seen by an independent client
(:class:`tests.support.portal_view.PortalView`), never just in the mount's
own view.  Uploads are asynchronous (a short quiet delay after ``close()``),
so portal checks wait with a deadline (``PortalView.wait_for``).

Identity matters as much as bytes: a file written in place or renamed stays
the same portal item (its ``fileId``), so its history and shares survive.

Most tests share one portal and one mount (``drive``) and each works in a
folder of its own; tests that need a remount, a quota or a longer upload
delay get their own portal.  What the portal cannot store — times, modes,
owners — is accepted; times are kept locally per version and survive a
remount with the same cache directory.
"""

from __future__ import annotations

import calendar
import ctypes
import errno
import fcntl
import hashlib
import os
import random
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import portal_http
from tests.support.mount_process import MountProcess, mounted
from tests.support.portal_process import PortalProcess, run_ok, running_portal
from tests.support.portal_view import PortalView, local_tree, portal_view
from tests.support.portalfs_cli import status_json
from tests.support.request_log import RequestLog

pytestmark = pytest.mark.fuse

MiB = 1 << 20
QUICK_UPLOADS = "upload_delay=0.2"
#: long enough that files closed just before a rename or rmdir are still waiting
SLOW_UPLOADS = "upload_delay=3"


@dataclass
class Drive:
    """A portal, alice's mount of it, and an independent view of it."""

    portal: PortalProcess
    mount: MountProcess
    view: PortalView

    @property
    def root(self) -> Path:
        return self.mount.mountpoint


@dataclass
class Place:
    """A test's own folder: ``local`` in the mount, ``remote`` the same folder on the portal."""

    drive: Drive
    local: Path
    remote: str

    @property
    def view(self) -> PortalView:
        return self.drive.view

    def at(self, *names: str) -> str:
        return "/".join((self.remote, *names))

    def portal_has(self, name: str, content: bytes, *, timeout: float = 30.0) -> None:
        """Wait until the portal holds exactly ``content`` at ``name`` (relative to this folder)."""
        self.view.wait_for(lambda: self.view.read(self.at(name)) == content, timeout=timeout,
                           what=f"{self.at(name)} with the expected {len(content)} bytes")


def _drive(base: Path, *options: str) -> Iterator[Drive]:
    with running_portal(base / "data") as portal, portal_view(portal) as view, \
            mounted(portal, base / "mnt", options=options) as mount:
        yield Drive(portal, mount, view)


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drive]:
    """One portal and mount for the tests that do not interfere (each in its own folder)."""
    yield from _drive(tmp_path_factory.mktemp("writes"), QUICK_UPLOADS)


@pytest.fixture(scope="module")
def slow_drive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drive]:
    """A mount whose uploads wait long enough to act on files that are closed but not uploaded."""
    yield from _drive(tmp_path_factory.mktemp("slow-writes"), SLOW_UPLOADS)


def _place(drive: Drive, request: pytest.FixtureRequest) -> Iterator[Place]:
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)
    local = drive.root / name
    local.mkdir()
    start = len(drive.mount.log())
    yield Place(drive, local, name)
    new_lines = drive.mount.log()[start:]
    assert "Traceback" not in new_lines, f"the mount logged an exception:\n{new_lines}"


@pytest.fixture
def place(drive: Drive, request: pytest.FixtureRequest) -> Iterator[Place]:
    yield from _place(drive, request)


@pytest.fixture
def slow_place(slow_drive: Drive, request: pytest.FixtureRequest) -> Iterator[Place]:
    yield from _place(slow_drive, request)


@pytest.fixture
def own_drive(portal: PortalProcess, tmp_path: Path) -> Iterator[Drive]:
    """A portal and mount of its own, for a test whose failure could take its mount down."""
    with portal_view(portal) as view, mounted(portal, tmp_path / "mnt", options=[QUICK_UPLOADS]) as mount:
        yield Drive(portal, mount, view)


# ---------------------------------------------------------------- helpers

def errno_of(call: Callable[[], object]) -> int:
    with pytest.raises(OSError) as raised:
        call()
    return raised.value.errno


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def shell(script: str) -> None:
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


_libc = ctypes.CDLL(None, use_errno=True)
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


def renameat2(old: Path, new: Path, flags: int) -> None:
    if _libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(old))


def portal_tree(view: PortalView, folder: str) -> dict[str, bytes | None]:
    """``PortalView.tree`` of ``folder`` with paths relative to it."""
    return {relative[len(folder) + 1:]: content for relative, content in view.tree(folder).items()}


# ---------------------------------------------------------------- content

def test_a_created_file_reaches_the_portal(place: Place) -> None:
    path = place.local / "new.txt"
    with open(path, "xb") as file:
        file.write(b"hello portal\n")
    assert path.read_bytes() == b"hello portal\n"  # at once, from the staged copy
    place.portal_has("new.txt", b"hello portal\n")
    assert place.view.names(place.remote) == {"new.txt"}


def test_append_redirections_add_to_the_end(place: Place) -> None:
    path = place.local / "log.txt"
    shell(f'echo one >> "{path}"; echo two >> "{path}"')
    place.portal_has("log.txt", b"one\ntwo\n")
    file_id = place.view.file_id(place.at("log.txt"))
    shell(f'echo three >> "{path}"')  # O_APPEND to a file that is on the portal now
    assert path.read_bytes() == b"one\ntwo\nthree\n"
    place.portal_has("log.txt", b"one\ntwo\nthree\n")
    assert place.view.file_id(place.at("log.txt")) == file_id


def test_o_trunc_replaces_a_portal_file_and_keeps_its_identity(place: Place) -> None:
    path = place.local / "draft.txt"
    path.write_bytes(b"a long first version\n" * 5000)
    place.portal_has("draft.txt", b"a long first version\n" * 5000)
    file_id = place.view.file_id(place.at("draft.txt"))
    with open(path, "wb") as file:  # O_WRONLY | O_CREAT | O_TRUNC
        file.write(b"short\n")
    assert path.read_bytes() == b"short\n"
    place.portal_has("draft.txt", b"short\n")
    assert place.view.file_id(place.at("draft.txt")) == file_id


def test_writes_into_the_middle_change_only_those_bytes(place: Place) -> None:
    rng = random.Random(11)
    model = bytearray(rng.randbytes(3 * MiB + 12345))
    path = place.local / "data.bin"
    path.write_bytes(model)
    place.portal_has("data.bin", bytes(model))
    file_id = place.view.file_id(place.at("data.bin"))
    with open(path, "r+b") as file:
        for offset, length in ((0, 1), (4095, 2), (MiB - 3, 7), (2 * MiB + 100, 70_000), (len(model) - 10, 10)):
            patch = rng.randbytes(length)
            assert os.pwrite(file.fileno(), patch, offset) == length
            model[offset:offset + length] = patch
    expected = sha256(bytes(model))
    assert sha256(path.read_bytes()) == expected
    place.view.wait_for(lambda: sha256(place.view.read(place.at("data.bin"))) == expected,
                        what="the edited data.bin")
    assert place.view.file_id(place.at("data.bin")) == file_id
    assert place.view.uploads_of(place.at("data.bin")) == 2  # the first version and the edit, once


def test_readers_holding_the_file_open_see_what_a_write_only_handle_wrote(place: Place) -> None:
    """Write-only handles bypass the kernel's page cache (mount/kernel.py): the
    pages a reader (and its mapping) cached must be dropped, not served stale."""
    import mmap

    rng = random.Random(12)
    model = bytearray(rng.randbytes(2 * MiB))
    path = place.local / "shared.bin"
    path.write_bytes(model)
    reader = os.open(path, os.O_RDONLY)
    try:
        mapping = mmap.mmap(reader, len(model), prot=mmap.PROT_READ)
        try:
            assert os.pread(reader, len(model), 0) == model and mapping[:] == model  # now cached
            writer = os.open(path, os.O_WRONLY)
            try:
                for offset, length in ((5000, 300_000), (MiB, MiB)):
                    patch = rng.randbytes(length)
                    assert os.pwrite(writer, patch, offset) == length
                    model[offset:offset + length] = patch
                    assert mapping[:] == model  # first: a pread may refetch attributes and drop pages itself
                    assert os.pread(reader, len(model), 0) == model
            finally:
                os.close(writer)
        finally:
            mapping.close()
    finally:
        os.close(reader)
    place.portal_has("shared.bin", bytes(model))


def test_a_write_past_the_end_leaves_a_gap_of_zeros(place: Place) -> None:
    path = place.local / "sparse.bin"
    path.write_bytes(b"head")
    place.portal_has("sparse.bin", b"head")
    with open(path, "r+b") as file:
        file.seek(5 * MiB + 3)
        file.write(b"tail")
    expected = b"head" + bytes(5 * MiB + 3 - 4) + b"tail"
    assert path.stat().st_size == len(expected)
    with open(path, "rb") as file:
        file.seek(2 * MiB)
        assert file.read(4096) == bytes(4096)
    assert path.read_bytes() == expected
    fresh = place.local / "fresh.bin"
    with open(fresh, "wb") as file:  # a new file that starts with a hole
        file.seek(3 * MiB)
        file.write(b"x")
    assert fresh.read_bytes() == bytes(3 * MiB) + b"x"
    place.portal_has("sparse.bin", expected)
    place.portal_has("fresh.bin", bytes(3 * MiB) + b"x")


def test_truncate_and_ftruncate_shrink_and_grow(place: Place) -> None:
    original = random.Random(5).randbytes(300_000)
    path = place.local / "t.bin"
    path.write_bytes(original)
    place.portal_has("t.bin", original)
    file_id = place.view.file_id(place.at("t.bin"))

    os.truncate(path, 1000)
    assert path.read_bytes() == original[:1000]
    place.portal_has("t.bin", original[:1000])
    os.truncate(path, 5000)
    assert path.read_bytes() == original[:1000] + bytes(4000)
    place.portal_has("t.bin", original[:1000] + bytes(4000))

    fd = os.open(path, os.O_RDWR)
    try:
        os.ftruncate(fd, 10)
        assert os.pwrite(fd, b"!", 10) == 1
        os.ftruncate(fd, 100_000)
        assert os.fstat(fd).st_size == 100_000
    finally:
        os.close(fd)
    expected = original[:10] + b"!" + bytes(100_000 - 11)
    assert path.read_bytes() == expected
    place.portal_has("t.bin", expected)
    assert place.view.file_id(place.at("t.bin")) == file_id


def test_a_fifty_mib_file_written_in_one_mib_chunks(place: Place) -> None:
    rng = random.Random(50)
    digest = hashlib.sha256()
    path = place.local / "fifty.bin"
    with open(path, "wb") as file:
        for _ in range(50):
            chunk = rng.randbytes(MiB)
            digest.update(chunk)
            file.write(chunk)
    expected = digest.hexdigest()
    place.view.wait_for(lambda: (item := place.view.stat(place.at("fifty.bin"))) is not None
                        and item.size == 50 * MiB, timeout=120, what="the 50 MiB upload")
    assert sha256(place.view.read(place.at("fifty.bin"))) == expected
    through_mount = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(MiB):
            through_mount.update(chunk)
    assert through_mount.hexdigest() == expected
    path.unlink()  # keeps the shared portal light for the whole-tree comparison at the end


def test_a_large_file_goes_up_while_it_is_written_in_one_put(own_drive: Drive) -> None:
    """Past ``early_upload`` (16 MiB) the file is sent while still open; its close ends that
    one request, and no upload follows (vfs/early_uploads.py)."""
    log = RequestLog(own_drive.portal)
    log.mark()
    rng = random.Random(40)
    model = bytearray()
    with open(own_drive.root / "copy.bin", "wb", buffering=0) as file:
        for _ in range(24):
            chunk = rng.randbytes(MiB)
            file.write(chunk)
            model += chunk

        def streaming() -> int:
            early = [e for e in status_json(own_drive.root)["uploads"]["in_flight"] if e.get("early")]
            return early[0]["sent"] if early else 0

        own_drive.view.wait_for(lambda: streaming() > 16 * MiB, timeout=60, what="the early upload")
        assert not own_drive.view.exists("copy.bin")  # sent, not yet ended: not the portal's
        for _ in range(8):
            chunk = rng.randbytes(MiB)
            file.write(chunk)
            model += chunk
    expected = sha256(bytes(model))
    own_drive.view.wait_for(lambda: sha256(own_drive.view.read("copy.bin")) == expected, timeout=60,
                            what="copy.bin whole on the portal")
    sends = [(r.verb, r.status) for r in log.since() if r.verb == "PUT" or "/upload/" in r.path]
    assert sends == [("PUT", 201)]


def test_a_partial_rewrite_of_a_large_portal_file_fetches_only_the_block_it_changes(
        portal: PortalProcess, tmp_path: Path) -> None:
    rng = random.Random(20)
    model = bytearray(rng.randbytes(20 * MiB))
    with portal_view(portal) as view:
        with mounted(portal, tmp_path / "first", options=[QUICK_UPLOADS]) as mount:
            (mount.mountpoint / "big.bin").write_bytes(model)
            view.wait_for(lambda: (item := view.stat("big.bin")) is not None and item.size == len(model),
                          timeout=60, what="the 20 MiB upload")
        file_id = view.file_id("big.bin")
        log = RequestLog(portal)
        with mounted(portal, tmp_path / "second", options=[QUICK_UPLOADS], cache_dir=tmp_path / "fresh-cache") as mount:
            log.mark()
            offset, patch = 10 * MiB + 1234, rng.randbytes(4096)
            fd = os.open(mount.mountpoint / "big.bin", os.O_RDWR)
            try:
                assert os.pwrite(fd, patch, offset) == len(patch)
                model[offset:offset + len(patch)] = patch
                assert os.pread(fd, len(patch) + 20, offset - 10) == model[offset - 10:offset + len(patch) + 10]
                before_upload = settled_content_bytes(log)  # the upload, after close, needs the rest
            finally:
                os.close(fd)
            expected = sha256(bytes(model))
            view.wait_for(lambda: sha256(view.read("big.bin")) == expected, timeout=60, what="the rewritten big.bin")
        assert view.file_id("big.bin") == file_id
    assert before_upload <= 2 * MiB, f"{before_upload} bytes fetched to change 4 KiB"


def settled_content_bytes(log: RequestLog) -> int:
    """Content bytes served since the mark, once no transfer is still being logged (a
    response is logged only when it is complete, so a fetch still streaming is not yet)."""
    last = -1
    while (now := log.content_bytes()) != last:
        last = now
        time.sleep(0.5)
    return now


def test_a_partial_edit_of_a_file_deleted_on_the_portal_meanwhile_leaves_the_mount_serving(
        portal: PortalProcess, tmp_path: Path) -> None:
    """The edit cannot be completed from a base that is gone; the mount must survive and say so, not exit."""
    with portal_view(portal) as view:
        portal_http.put(view.http, portal, view.full("vanishing.bin"), random.Random(4).randbytes(3 * MiB))
        with mounted(portal, tmp_path / "mnt", options=[QUICK_UPLOADS]) as mount:
            fd = os.open(mount.mountpoint / "vanishing.bin", os.O_RDWR)
            try:
                assert os.pwrite(fd, b"Z", MiB) == 1  # stages the one block it touches, nothing else
                deleted = view.http.request("DELETE", portal_http.webdav_url(view.full("vanishing.bin")))
                assert deleted.status_code == 204
            finally:
                os.close(fd)  # the upload may start now, and finds its base gone
            view.wait_for(lambda: "deleted on the portal meanwhile" in mount.log(), timeout=15,
                          what="the upload of the edit")
            (mount.mountpoint / "after.txt").write_bytes(b"still serving")
            view.wait_for(lambda: mount.process.poll() is not None or view.read("after.txt") == b"still serving",
                          timeout=15, what="a later upload")
            assert mount.process.poll() is None, f"the mount exited:\n{mount.log()}"
            assert "Traceback" not in mount.log()
            status = status_json(mount.mountpoint)
            (held,) = [item for item in status["uploads"]["pending"] if item["path"] == "vanishing.bin"]
            assert held["state"] == "held" and "NotFound" in held["last_error"], "kept, and said why"


# ---------------------------------------------------------------- folders

def test_mkdir_and_mkdir_p_make_folders_on_the_portal_at_once(place: Place) -> None:
    (place.local / "single").mkdir()
    run_ok("mkdir", "-p", place.local / "a" / "b" / "c")
    for folder in ("single", "a", "a/b", "a/b/c"):  # namespace changes happen before they return
        item = place.view.stat(place.at(folder))
        assert item is not None and item.is_dir, folder
    assert errno_of(lambda: (place.local / "single").mkdir()) == errno.EEXIST


def test_rmdir_removes_an_empty_folder_and_refuses_a_full_one(place: Place) -> None:
    (place.local / "empty").mkdir()
    made = place.view.stat(place.at("empty"))
    assert made is not None and made.is_dir
    os.rmdir(place.local / "empty")
    assert not place.view.exists(place.at("empty"))
    (place.local / "full").mkdir()
    (place.local / "full" / "f.txt").write_bytes(b"x")
    place.portal_has("full/f.txt", b"x")
    assert errno_of(lambda: os.rmdir(place.local / "full")) == errno.ENOTEMPTY
    assert place.view.read(place.at("full/f.txt")) == b"x"
    assert errno_of(lambda: os.rmdir(place.local / "full" / "f.txt")) == errno.ENOTDIR


def test_rmdir_refuses_a_folder_whose_only_file_is_still_open_for_writing(place: Place) -> None:
    (place.local / "busy").mkdir()
    with open(place.local / "busy" / "open.txt", "wb") as file:
        file.write(b"staged")
        file.flush()
        assert place.view.names(place.at("busy")) == set()  # never uploaded while open for writing
        assert errno_of(lambda: os.rmdir(place.local / "busy")) == errno.ENOTEMPTY
    place.portal_has("busy/open.txt", b"staged")


def test_rmdir_refuses_a_folder_whose_only_file_waits_for_its_upload(slow_place: Place) -> None:
    (slow_place.local / "waiting").mkdir()
    (slow_place.local / "waiting" / "closed.txt").write_bytes(b"closed, not uploaded")
    assert slow_place.view.names(slow_place.at("waiting")) == set()
    assert errno_of(lambda: os.rmdir(slow_place.local / "waiting")) == errno.ENOTEMPTY
    slow_place.portal_has("waiting/closed.txt", b"closed, not uploaded")


# ---------------------------------------------------------------- unlink

def test_unlink_sends_the_file_to_the_recycle_bin(place: Place) -> None:
    path = place.local / "gone.txt"
    path.write_bytes(b"bye")
    place.portal_has("gone.txt", b"bye")
    path.unlink()
    assert not path.exists()
    assert place.view.names(place.remote) == set()
    assert place.view.deleted_names(place.remote) == {"gone.txt"}
    assert errno_of(path.unlink) == errno.ENOENT


def test_an_unlinked_new_file_stays_readable_and_writable_while_open_and_never_reaches_the_portal(
        own_drive: Drive) -> None:
    path = own_drive.root / "scratch.bin"
    with open(path, "w+b", buffering=0) as file:
        file.write(b"temporary")
        path.unlink()
        assert not path.exists()
        assert os.pread(file.fileno(), 100, 0) == b"temporary"
        assert os.pread(file.fileno(), 4, 5) == b"rary"
        assert file.write(b" and more") == 9
        assert os.pread(file.fileno(), 100, 0) == b"temporary and more"
    (own_drive.root / "marker.txt").write_bytes(b"written after")
    own_drive.view.wait_for(lambda: own_drive.view.read("marker.txt") == b"written after", what="marker.txt")
    assert own_drive.view.names() == {"marker.txt"}
    assert own_drive.view.deleted_names() == set()
    assert set(os.listdir(own_drive.root)) == {".snapshots", "marker.txt"}
    assert own_drive.mount.process.poll() is None, own_drive.mount.log()
    assert "Traceback" not in own_drive.mount.log()


def test_an_unlinked_portal_file_stays_readable_and_is_deleted_at_its_last_close(portal: PortalProcess,
                                                                                tmp_path: Path) -> None:
    content = random.Random(3).randbytes(5 * MiB)
    with portal_view(portal) as view:
        with mounted(portal, tmp_path / "writer", options=[QUICK_UPLOADS]) as mount:
            (mount.mountpoint / "kept.bin").write_bytes(content)
            view.wait_for(lambda: view.read("kept.bin") == content, what="kept.bin")
        # A fresh cache, so the bytes read after the unlink cannot all be in it yet.
        with mounted(portal, tmp_path / "reader", options=[QUICK_UPLOADS], cache_dir=tmp_path / "cold") as mount:
            path = mount.mountpoint / "kept.bin"
            fd = os.open(path, os.O_RDONLY)
            try:
                assert os.pread(fd, 4096, 0) == content[:4096]
                path.unlink()
                assert not path.exists()
                assert "kept.bin" not in os.listdir(mount.mountpoint)
                for offset in (MiB + 17, 3 * MiB, len(content) - 4096):
                    assert os.pread(fd, 4096, offset) == content[offset:offset + 4096]
            finally:
                os.close(fd)
            view.wait_for(lambda: "kept.bin" in view.deleted_names(), what="kept.bin in the recycle bin")
            assert "kept.bin" not in view.names()


# ---------------------------------------------------------------- rename

def test_rename_of_a_file_within_and_across_folders_keeps_its_identity(place: Place) -> None:
    (place.local / "src").mkdir()
    (place.local / "dst").mkdir()
    (place.local / "src" / "a.txt").write_bytes(b"A")
    place.portal_has("src/a.txt", b"A")
    file_id = place.view.file_id(place.at("src/a.txt"))

    os.rename(place.local / "src" / "a.txt", place.local / "src" / "b.txt")
    assert place.view.names(place.at("src")) == {"b.txt"}
    assert place.view.file_id(place.at("src/b.txt")) == file_id

    os.rename(place.local / "src" / "b.txt", place.local / "dst" / "c.txt")
    assert place.view.names(place.at("src")) == set()
    assert place.view.file_id(place.at("dst/c.txt")) == file_id
    assert place.view.read(place.at("dst/c.txt")) == b"A"
    assert (place.local / "dst" / "c.txt").read_bytes() == b"A"
    assert os.listdir(place.local / "src") == []


def test_rename_of_a_folder_within_and_across_folders_keeps_identities(place: Place) -> None:
    (place.local / "one").mkdir()
    (place.local / "parent").mkdir()
    (place.local / "one" / "inside.txt").write_bytes(b"inside")
    place.portal_has("one/inside.txt", b"inside")
    folder_id = place.view.file_id(place.at("one"))
    file_id = place.view.file_id(place.at("one/inside.txt"))

    os.rename(place.local / "one", place.local / "two")
    assert place.view.file_id(place.at("two")) == folder_id
    assert place.view.file_id(place.at("two/inside.txt")) == file_id

    os.rename(place.local / "two", place.local / "parent" / "three")
    assert place.view.names(place.remote) == {"parent"}
    assert place.view.file_id(place.at("parent/three")) == folder_id
    assert place.view.file_id(place.at("parent/three/inside.txt")) == file_id
    assert (place.local / "parent" / "three" / "inside.txt").read_bytes() == b"inside"
    assert errno_of(lambda: os.rename(place.local / "parent", place.local / "parent" / "three" / "x")) == errno.EINVAL


def test_rename_over_an_existing_file_replaces_it(place: Place) -> None:
    (place.local / "new.txt").write_bytes(b"new")
    (place.local / "old.txt").write_bytes(b"old")
    place.portal_has("new.txt", b"new")
    place.portal_has("old.txt", b"old")
    new_id = place.view.file_id(place.at("new.txt"))

    os.rename(place.local / "new.txt", place.local / "old.txt")
    assert (place.local / "old.txt").read_bytes() == b"new"
    assert sorted(os.listdir(place.local)) == ["old.txt"]
    assert place.view.names(place.remote) == {"old.txt"}
    assert place.view.read(place.at("old.txt")) == b"new"
    assert place.view.file_id(place.at("old.txt")) == new_id
    assert place.view.deleted_names(place.remote) == {"old.txt"}  # the replaced file, in the recycle bin


def a_and_b_on_the_portal(place: Place) -> None:
    """``a.txt`` (``a``) and ``b.txt`` (``b``) in the place, both uploaded: a rename's source and target."""
    (place.local / "a.txt").write_bytes(b"a")
    (place.local / "b.txt").write_bytes(b"b")
    place.portal_has("a.txt", b"a")
    place.portal_has("b.txt", b"b")


def test_rename_noreplace_refuses_an_existing_target(place: Place) -> None:
    a_and_b_on_the_portal(place)
    assert errno_of(lambda: renameat2(place.local / "a.txt", place.local / "b.txt", RENAME_NOREPLACE)) == errno.EEXIST
    assert (place.local / "a.txt").read_bytes() == b"a"
    assert place.view.read(place.at("b.txt")) == b"b"
    renameat2(place.local / "a.txt", place.local / "c.txt", RENAME_NOREPLACE)  # a free name is fine
    assert place.view.names(place.remote) == {"b.txt", "c.txt"}
    assert place.view.read(place.at("c.txt")) == b"a"


def test_rename_exchange_is_refused(place: Place) -> None:
    a_and_b_on_the_portal(place)
    assert errno_of(lambda: renameat2(place.local / "a.txt", place.local / "b.txt", RENAME_EXCHANGE)) == errno.EINVAL
    assert (place.local / "a.txt").read_bytes() == b"a"
    assert (place.local / "b.txt").read_bytes() == b"b"
    assert place.view.read(place.at("a.txt")) == b"a"
    assert place.view.read(place.at("b.txt")) == b"b"


def test_renaming_a_folder_moves_the_files_waiting_for_upload_inside_it(slow_place: Place) -> None:
    before = slow_place.local / "before"
    (before / "sub").mkdir(parents=True)
    (before / "closed.txt").write_bytes(b"closed")
    (before / "sub" / "deep.txt").write_bytes(b"deep")
    with open(before / "open.txt", "wb") as held:
        held.write(b"held")
        held.flush()
        assert slow_place.view.names(slow_place.at("before")) == {"sub"}  # no file uploaded yet
        os.rename(before, slow_place.local / "after")
        held.write(b" open")
    assert sorted(os.listdir(slow_place.local / "after")) == ["closed.txt", "open.txt", "sub"]
    slow_place.portal_has("after/closed.txt", b"closed")
    slow_place.portal_has("after/sub/deep.txt", b"deep")
    slow_place.portal_has("after/open.txt", b"held open")
    assert slow_place.view.names(slow_place.remote) == {"after"}


# ---------------------------------------------------------------- times, modes, owners, links

STAMP = calendar.timegm((2001, 2, 3, 4, 5, 6))  # touch -d "2001-02-03 04:05:06" in UTC


def test_times_set_through_the_mount_are_kept_and_survive_a_remount(portal: PortalProcess, tmp_path: Path) -> None:
    source = tmp_path / "local.txt"
    source.write_bytes(b"copied with its time")
    os.utime(source, (STAMP + 300, STAMP + 300))
    cache = tmp_path / "cache"
    times = {"touched.txt": STAMP, "utimed.txt": STAMP + 60, "copied.txt": STAMP + 300, "later.txt": STAMP + 120}
    with portal_view(portal) as view:
        with mounted(portal, tmp_path / "mnt", options=[QUICK_UPLOADS], cache_dir=cache) as mount:
            root = mount.mountpoint
            (root / "touched.txt").write_bytes(b"t")
            subprocess.run(["touch", "-d", "2001-02-03 04:05:06", root / "touched.txt"], check=True, timeout=60,
                           env={**os.environ, "TZ": "UTC"})
            (root / "utimed.txt").write_bytes(b"u")
            os.utime(root / "utimed.txt", (STAMP + 60, STAMP + 60))
            run_ok("cp", "-p", source, root / "copied.txt")
            (root / "later.txt").write_bytes(b"on the portal first")
            view.wait_for(lambda: view.read("later.txt") == b"on the portal first", what="later.txt")
            os.utime(root / "later.txt", (STAMP + 120, STAMP + 120))  # a file that is on the portal already
            for name, stamp in times.items():
                assert (root / name).stat().st_mtime == stamp, name
            view.wait_for(lambda: view.names() == set(times), what="every file on the portal")
        with mounted(portal, tmp_path / "mnt", options=[QUICK_UPLOADS], cache_dir=cache) as mount:
            for name, stamp in times.items():
                assert (mount.mountpoint / name).stat().st_mtime == stamp, name
            assert (mount.mountpoint / "copied.txt").read_bytes() == b"copied with its time"
        assert view.read("copied.txt") == b"copied with its time"
        assert view.read("later.txt") == b"on the portal first"


def test_chmod_and_chown_are_accepted_and_not_stored(place: Place) -> None:
    path = place.local / "perm.txt"
    path.write_bytes(b"x")
    before = path.stat()
    folder_before = place.local.stat()
    os.chmod(path, 0o600)
    os.chown(path, 4321, 4321)
    os.chmod(place.local, 0o700)
    after = path.stat()
    assert (after.st_mode, after.st_uid, after.st_gid) == (before.st_mode, before.st_uid, before.st_gid)
    assert place.local.stat().st_mode == folder_before.st_mode
    place.portal_has("perm.txt", b"x")


def test_symlinks_hard_links_and_device_nodes_are_refused_with_eperm(place: Place) -> None:
    (place.local / "target.txt").write_bytes(b"t")
    assert errno_of(lambda: os.symlink("target.txt", place.local / "symlink")) == errno.EPERM
    assert errno_of(lambda: os.link(place.local / "target.txt", place.local / "hardlink")) == errno.EPERM
    assert errno_of(lambda: os.mkfifo(place.local / "fifo")) == errno.EPERM
    assert errno_of(lambda: os.mknod(place.local / "node", stat.S_IFCHR | 0o600, os.makedev(1, 3))) == errno.EPERM
    assert os.listdir(place.local) == ["target.txt"]
    place.portal_has("target.txt", b"t")
    assert place.view.names(place.remote) == {"target.txt"}


def make_source_tree(top: Path) -> None:
    """An ordinary tree: nested folders, an empty file and folder, odd names, a file of a few blocks."""
    (top / "docs" / "deep" / "nested").mkdir(parents=True)
    (top / "empty folder").mkdir()
    (top / "readme.txt").write_bytes(b"read me\n")
    (top / "empty.txt").write_bytes(b"")
    (top / "docs" / "report 2024 #1.txt").write_bytes(b"quarterly\n" * 1000)
    (top / "docs" / "résumé.md").write_bytes("# résumé\n".encode())
    (top / "docs" / "deep" / "nested" / "data.bin").write_bytes(random.Random(9).randbytes(2 * MiB + 7))
    for index, path in enumerate(sorted(top.rglob("*"))):
        os.utime(path, (STAMP + index, STAMP + index))


@pytest.mark.parametrize("tool", ["cp -a", "rsync -a", "tar x"])
def test_copying_a_tree_in_gives_the_portal_the_same_tree(place: Place, tmp_path: Path, tool: str) -> None:
    source = tmp_path / "source"
    make_source_tree(source)
    target = place.local / "copy"
    if tool == "cp -a":
        run_ok("cp", "-a", source, target)
    elif tool == "rsync -a":
        if shutil.which("rsync") is None:
            pytest.skip("rsync is not installed")
        run_ok("rsync", "-a", f"{source}/", f"{target}/")
    else:
        archive = tmp_path / "tree.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(source, arcname=".")
        target.mkdir()
        run_ok("tar", "-x", "-f", archive, "-C", target)
    expected = local_tree(source)
    assert local_tree(target) == expected
    data = "docs/deep/nested/data.bin"
    assert (target / data).stat().st_mtime == (source / data).stat().st_mtime
    place.view.wait_for(lambda: portal_tree(place.view, place.at("copy")) == expected, timeout=60,
                        what=f"the tree copied by {tool}")


# ---------------------------------------------------------------- names

REFUSED_NAMES = {"colon": "a:b", "question-mark": "x?", "device-name": "con.txt", "trailing-dot": "trailing.",
                 "trailing-space": "trailing ", "pipe": "pipe|name", "quote": 'quo"te', "backslash": "back\\slash"}


@pytest.mark.parametrize("name", list(REFUSED_NAMES.values()), ids=list(REFUSED_NAMES))
def test_a_name_the_portal_refuses_fails_at_once_with_einval(place: Place, name: str) -> None:
    assert errno_of(lambda: open(place.local / name, "xb").close()) == errno.EINVAL
    assert errno_of(lambda: os.mkdir(place.local / name)) == errno.EINVAL
    (place.local / "fine.txt").write_bytes(b"fine")
    assert errno_of(lambda: os.rename(place.local / "fine.txt", place.local / name)) == errno.EINVAL
    assert os.listdir(place.local) == ["fine.txt"]
    place.portal_has("fine.txt", b"fine")
    assert place.view.names(place.remote) == {"fine.txt"}


def test_a_name_over_255_bytes_is_enametoolong(place: Place) -> None:
    for name in ("n" * 256, "é" * 128):
        assert errno_of(lambda: open(place.local / name, "xb").close()) == errno.ENAMETOOLONG
        assert errno_of(lambda: os.mkdir(place.local / name)) == errno.ENAMETOOLONG
    longest = "n" * 251 + ".txt"
    (place.local / longest).write_bytes(b"255 bytes is fine")
    place.portal_has(longest, b"255 bytes is fine")


# ---------------------------------------------------------------- the volume

def test_statfs_reports_the_user_quota(tmp_path: Path) -> None:
    with running_portal(tmp_path / "data", "--quota", "1G") as portal, \
            mounted(portal, tmp_path / "mnt", options=[QUICK_UPLOADS]) as mount:
        info = os.statvfs(mount.mountpoint)
        assert info.f_frsize > 0
        assert info.f_blocks * info.f_frsize == 1 << 30
        assert 0 < info.f_bavail <= info.f_blocks
        assert info.f_namemax == 255


# ---------------------------------------------------------------- locks

LOCK_PROBE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    if sys.argv[2] == "flock":
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, int(sys.argv[4]), int(sys.argv[3]))
except OSError as exc:
    print(exc.errno)
else:
    print(0)
"""


def lock_from_another_process(path: Path, kind: str, start: int = 0, length: int = 0) -> int:
    """Try a non-blocking exclusive lock in a separate process: 0 on success, else its errno."""
    result = subprocess.run([sys.executable, "-c", LOCK_PROBE, str(path), kind, str(start), str(length)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


def test_byte_range_locks_exclude_another_process(place: Place) -> None:
    path = place.local / "locked.db"
    path.write_bytes(bytes(100))
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)  # bytes 0-9
        assert lock_from_another_process(path, "lockf", 5, 10) in (errno.EAGAIN, errno.EACCES)
        assert lock_from_another_process(path, "lockf", 20, 10) == 0  # a range nobody holds
        fcntl.lockf(fd, fcntl.LOCK_UN, 10, 0)
        assert lock_from_another_process(path, "lockf", 5, 10) == 0
    finally:
        os.close(fd)


def test_flock_excludes_another_process(place: Place) -> None:
    path = place.local / "flocked"
    path.write_bytes(b"x")
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert lock_from_another_process(path, "flock") == errno.EWOULDBLOCK
        fcntl.flock(fd, fcntl.LOCK_UN)
        assert lock_from_another_process(path, "flock") == 0
    finally:
        os.close(fd)


# ---------------------------------------------------------------- the end

def test_the_mount_and_the_portal_agree_after_all_writes(place: Place) -> None:
    """Run last in this module: whatever the tests before left, both sides show the same tree."""
    (place.local / "kept").mkdir()
    (place.local / "kept" / "a.txt").write_bytes(b"a")
    (place.local / "b.txt").write_bytes(b"b")
    os.rename(place.local / "b.txt", place.local / "kept" / "b.txt")
    with open(place.local / "kept" / "a.txt", "ab") as file:
        file.write(b"+")
    mount_view = local_tree(place.drive.root, skip={".snapshots"})
    assert mount_view[f"{place.remote}/kept/a.txt"] == b"a+"
    place.view.wait_for(lambda: place.view.tree() == local_tree(place.drive.root, skip={".snapshots"}),
                        timeout=60, what="the portal's tree, equal to the mount's")
