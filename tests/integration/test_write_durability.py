"""Durable write-back through a real mount: what ``close()`` or ``fsync()`` acknowledged is never lost.

The promise (issue 4, "durable write-back" and "bad input"): written data is
on local disk with a journal entry before ``close()`` returns, and ``fsync()``
returns only once the portal confirmed it.  So here the daemon is killed with
SIGKILL at many points, the portal is killed under running uploads, a remote
client changes a file that is open for writing here, the user's quota runs
out, and the local cache disk fills up — and each time the portal, checked
through an independent client (``PortalView``), ends up with every
acknowledged byte, exactly once, under the right name and identity.

After a kill the mount is remounted with the *same* cache directory and the
mountpoint is never touched: the journal must be replayed at mount time, not
on the first FUSE request.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import portal_http
from tests.support.mount_process import MountProcess, mounted, unmount
from tests.support.portal_process import PortalProcess, free_port, running_portal
from tests.support.portal_view import PortalView, portal_view
from tests.support.portalfs_cli import HOLD_BACK, content, status_json
from tests.support.sdk import user_session
from tests.support.tcp_proxy import tcp_proxy
from tests.support.waiting import wait_for

pytestmark = pytest.mark.fuse

CONFLICT_NAME = re.compile(r"^(?P<stem>.+) \(conflict \d{4}-\d{2}-\d{2} \d{6}\)(?P<ext>\.[^.]*)?$")


def kill_daemon(mount: MountProcess) -> None:
    """SIGKILL the daemon's whole process group, then take its dead mount down (``fusermount3 -uz``)."""
    os.killpg(mount.process.pid, signal.SIGKILL)
    mount.process.wait(timeout=20)
    unmount(mount.mountpoint)


def conflict_copies(names: set[str]) -> set[str]:
    return {name for name in names if CONFLICT_NAME.match(name)}


def write_file(path: Path, data: bytes, *, sync: bool = False) -> None:
    with open(path, "wb") as file:
        file.write(data)
        if sync:
            file.flush()
            os.fsync(file.fileno())


def summary(tree: dict[str, bytes | None]) -> dict[str, str]:
    return {path: "folder" if data is None else f"{len(data)} bytes, {hash(data):x}" for path, data in tree.items()}


def wait_for_tree(view: PortalView, expected: dict[str, bytes | None], mount: MountProcess, *, what: str,
                  timeout: float = 60) -> None:
    """Wait until the portal holds exactly ``expected``; else fail showing what it holds and the mount's log."""
    try:
        view.wait_for(lambda: view.tree() == expected, timeout=timeout, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nportal: {summary(view.tree())}\nexpected: {summary(expected)}\n"
                             f"mount log:\n{mount.log()[-6000:]}") from None


# ------------------------------------------------------------------ kill -9


@dataclass
class Expected:
    """The portal's state once the journal is replayed: the whole tree (nothing more: no duplicates, no
    conflict copies), and how many uploads some files must have taken."""

    tree: dict[str, bytes | None]
    versions: dict[str, int] = field(default_factory=dict)  # path → uploads the portal stores for it


def _after_close(portal: PortalProcess, view: PortalView, mount: MountProcess) -> Expected:
    """Several files closed (durable locally), none uploaded yet; one of them in a new folder."""
    root = mount.mountpoint
    (root / "docs").mkdir()
    files = {"a.txt": content(1, 10), "b.bin": content(2, 300_000), "docs/c.txt": content(3, 5000),
             "empty": b""}
    for name, data in files.items():
        write_file(root / name, data)
    assert view.names() == {"docs"}  # the delay holds every upload back
    return Expected({**files, "docs": None}, versions={name: 1 for name in files})


def _after_rename(portal: PortalProcess, view: PortalView, mount: MountProcess) -> Expected:
    """Staged files renamed before their upload: in place, into a folder, and over a portal file (a save)."""
    root = mount.mountpoint
    (root / "archive").mkdir()
    write_file(root / "draft.txt", content(4, 7000))
    os.rename(root / "draft.txt", root / "final.txt")
    write_file(root / "moved.bin", content(5, 70_000))
    os.rename(root / "moved.bin", root / "archive" / "moved.bin")
    write_file(root / ".report.txt.tmp-1234", content(6, 4000))  # write a temp file, rename it over the original
    os.rename(root / ".report.txt.tmp-1234", root / "report.txt")
    return Expected({"report.txt": content(6, 4000), "final.txt": content(4, 7000), "archive": None,
                     "archive/moved.bin": content(5, 70_000)},
                    versions={"report.txt": 2, "final.txt": 1})


def _after_fsync(portal: PortalProcess, view: PortalView, mount: MountProcess) -> Expected:
    """A file fsynced (the portal has it), then changed and closed again; another only fsynced."""
    root = mount.mountpoint
    write_file(root / "ledger.txt", b"first entry\n", sync=True)
    assert view.read("ledger.txt") == b"first entry\n"  # fsync returned: the portal confirmed it
    with open(root / "ledger.txt", "ab") as file:
        file.write(b"second entry\n")
    write_file(root / "synced.bin", content(7, 200_000), sync=True)
    assert view.read("synced.bin") == content(7, 200_000)
    return Expected({"ledger.txt": b"first entry\nsecond entry\n", "synced.bin": content(7, 200_000)},
                    versions={"ledger.txt": 2, "synced.bin": 1})


BIG = 64 << 20
#: what the proxy of the kill-mid-upload case lets through; the portal then holds a part of
#: at least HELD - 1 MiB (TLS and the request's head count too, and it writes in 1 MiB pieces)
HELD = 8 << 20


def wait_for_upload_in_progress(portal: PortalProcess, timeout: float = 60, *, at_least: int = 1 << 20) -> None:
    """Until the reference portal is receiving an upload (it writes one into ``tmp/*.part``) and
    has ``at_least`` bytes of it (it writes in pieces of 1 MiB)."""
    wanted = max(1 << 20, at_least - (1 << 20))

    def receiving() -> bool:
        return any(part.stat().st_size >= wanted for part in (portal.data_dir / "tmp").glob("*.part"))

    # FileNotFoundError: an upload finished between the listing and the stat
    wait_for(receiving, timeout, "an upload to reach the portal", interval=0.005, ignoring=(FileNotFoundError,))


def _during_big_upload(portal: PortalProcess, view: PortalView, mount: MountProcess) -> Expected:
    """A 64 MiB rewrite of an existing portal file, killed while the portal is receiving it: the
    mount reaches the portal through a proxy that holds back all but the first ``HELD`` bytes."""
    write_file(mount.mountpoint / "big.bin", content(9, BIG))
    wait_for_upload_in_progress(portal, at_least=HELD)
    return Expected({"big.bin": content(9, BIG)}, versions={"big.bin": 2})


def _during_early_upload(portal: PortalProcess, view: PortalView, mount: MountProcess) -> Expected:
    """A 64 MiB rewrite, closed and sent as it was written, killed before the upload queue ended
    the stream (vfs/early_uploads.py): the portal must keep nothing of it, the journal the rest."""
    write_file(mount.mountpoint / "big.bin", content(11, BIG))
    wait_for_upload_in_progress(portal, at_least=BIG)
    return Expected({"big.bin": content(11, BIG)}, versions={"big.bin": 2})


def _just_after_close(portal: PortalProcess, view: PortalView, mount: MountProcess) -> Expected:
    """No upload delay: the kill lands right after close(), while the upload starts (or has just ended)."""
    write_file(mount.mountpoint / "quick.bin", content(10, BIG))
    return Expected({"quick.bin": content(10, BIG)}, versions={"quick.bin": 1})


@dataclass(frozen=True)
class KillPoint:
    act: Callable[[PortalProcess, PortalView, MountProcess], Expected]
    options: tuple[str, ...] = (HOLD_BACK,)
    on_the_portal: dict[str, bytes] = field(default_factory=dict)  # files there before the mount
    #: killed while this file was being sent: the portal must still have only its first version
    mid_upload: str | None = None
    #: the mount reaches the portal through a proxy that forwards this many bytes a connection, no more
    hold_after: int | None = None


KILL_POINTS = {
    "after_close": KillPoint(_after_close),
    "after_rename": KillPoint(_after_rename, on_the_portal={"report.txt": b"the portal's first version"}),
    "after_fsync": KillPoint(_after_fsync),
    "during_big_upload": KillPoint(_during_big_upload, ("upload_delay=0", "early_upload=0"),
                                   {"big.bin": content(8, 1 << 20)}, mid_upload="big.bin", hold_after=HELD),
    "during_early_upload": KillPoint(_during_early_upload, (HOLD_BACK,), {"big.bin": content(8, 1 << 20)},
                                     mid_upload="big.bin"),
    "just_after_close": KillPoint(_just_after_close, ("upload_delay=0",)),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_9_loses_nothing_acknowledged(point: str, portal: PortalProcess, tmp_path: Path) -> None:
    kill_point = KILL_POINTS[point]
    cache = tmp_path / "cache"
    mountpoint = tmp_path / "mnt"
    with portal_view(portal) as view:
        for name, data in kill_point.on_the_portal.items():
            portal_http.put(view.http, portal, f"My Files/{name}", data)
        identities = {name: view.file_id(name) for name in kill_point.on_the_portal}
        with ExitStack() as stack:
            target = portal
            if kill_point.hold_after is not None:
                proxy = stack.enter_context(tcp_proxy(portal.port, hold_after=kill_point.hold_after))
                target = proxy.in_front_of(portal)
            mount = stack.enter_context(mounted(target, mountpoint, options=kill_point.options, cache_dir=cache))
            expected = kill_point.act(target, view, mount)
            kill_daemon(mount)
        if kill_point.mid_upload is not None:  # else this case would kill nothing mid-upload
            assert view.uploads_of(kill_point.mid_upload) == 1, "the upload had ended before the kill"

        # Remount with the same cache directory and never touch the mountpoint: the journal is
        # replayed at mount time.  The long delay shows recovered uploads do not wait for it.
        with mounted(portal, mountpoint, options=[HOLD_BACK], cache_dir=cache) as remount:
            wait_for_tree(view, expected.tree, remount, what=f"every acknowledged file ({point})")
            log = remount.log()
        for path, file_id in identities.items():
            assert view.file_id(path) == file_id, f"{path} lost its identity"
        for path, count in expected.versions.items():
            assert view.uploads_of(path) == count, f"{path}: {view.uploads_of(path)} uploads, not {count}"
        assert "changed on the portal since" not in log


# ------------------------------------------------------------------ portal down


FAST_FAILURE = ["request_timeout=5", "retry_time=2", "connect_timeout=1", "read_timeout=3"]


def test_uploads_interrupted_by_a_dead_portal_finish_when_it_returns(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    small = {f"file-{n}.bin": content(20 + n, 50_000 * n) for n in range(1, 6)}
    files = {"large.bin": content(30, BIG), **small}
    with running_portal(data, port=port) as portal:
        with mounted(portal, tmp_path / "mnt", options=["upload_delay=0.2", *FAST_FAILURE]) as mount:
            write_file(mount.mountpoint / "large.bin", files["large.bin"])
            wait_for_upload_in_progress(portal)
            for name, data_bytes in small.items():
                write_file(mount.mountpoint / name, data_bytes)
            portal.kill()  # during the large upload, before or during the small ones
            wait_for(lambda: "retrying in" in mount.log(), what="'retrying in' in the mount log",
                     detail=lambda: mount.log()[-3000:])  # the queue noticed and backs off
            time.sleep(1)  # stay away a little longer: several uploads fail
            with running_portal(data, port=port) as again, portal_view(again) as view:
                view.wait_for(lambda: view.tree() == files, timeout=90, what="every upload retried to the end")
                assert not conflict_copies(view.names())
                assert all(view.uploads_of(name) == 1 for name in files)


def test_fsync_while_the_portal_is_down_fails_in_bounded_time_and_the_data_arrives_later(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    with running_portal(data, port=port) as portal:
        with mounted(portal, tmp_path / "mnt", options=["upload_delay=0.2", *FAST_FAILURE]) as mount:
            portal.kill()
            outcome: dict[str, object] = {}

            def write_and_fsync() -> None:
                with open(mount.mountpoint / "notes.txt", "wb") as file:
                    file.write(b"written while the portal was away\n")
                    file.flush()
                    try:
                        os.fsync(file.fileno())
                        outcome["fsync"] = "returned"
                    except OSError as exc:
                        outcome["fsync"] = exc.errno
                outcome["closed"] = True

            writer = threading.Thread(target=write_and_fsync, daemon=True)
            writer.start()
            writer.join(timeout=60)  # request_timeout=5: far less; a hang fails here, not in CI's timeout
            assert not writer.is_alive(), "fsync hangs while the portal is down"
            assert outcome.get("fsync") in (errno.ETIMEDOUT, errno.EIO), outcome
            assert outcome.get("closed")

            with running_portal(data, port=port) as again, portal_view(again) as view:
                view.wait_for(lambda: view.tree() == {"notes.txt": b"written while the portal was away\n"},
                              timeout=90, what="the fsynced file after the portal returned")


# ------------------------------------------------------------------ conflicts


def test_remote_change_while_open_here_makes_a_conflict_copy(portal: PortalProcess, tmp_path: Path) -> None:
    with portal_view(portal) as view:
        portal_http.put(view.http, portal, "My Files/plan.txt", b"original plan\n")
        file_id = view.file_id("plan.txt")
    with portal_view(portal) as view, mounted(portal, tmp_path / "mnt", options=["upload_delay=0.2"]) as mount:
        remote_change = tmp_path / "plan.txt"
        remote_change.write_bytes(b"a colleague's change, made on the portal\n")

        with open(mount.mountpoint / "plan.txt", "r+b") as file:
            assert file.read() == b"original plan\n"
            file.seek(0)
            file.write(b"my local edit, made through the mount\n")
            file.truncate()
            with user_session(portal) as sdk:  # another client changes the file before this close
                sdk.files.upload_file(str(remote_change), "My Files")
            assert view.read("plan.txt") == b"a colleague's change, made on the portal\n"

        copies = view.wait_for(lambda: conflict_copies(view.names()), what="a conflict copy")
        assert len(copies) == 1
        (copy,) = copies
        match = CONFLICT_NAME.match(copy)
        assert match is not None and match["stem"] == "plan" and match["ext"] == ".txt"
        assert view.names() == {"plan.txt", copy}
        assert view.read(copy) == b"my local edit, made through the mount\n"
        assert view.read("plan.txt") == b"a colleague's change, made on the portal\n"  # untouched
        assert view.file_id("plan.txt") == file_id
        assert view.uploads_of("plan.txt") == 2  # the original and the colleague's; nothing of ours

        assert re.search(r"WARNING .*plan\.txt changed on the portal", mount.log()), mount.log()[-3000:]
        conflicts = status_json(mount.mountpoint)["conflicts"]
        assert any(str(entry.get("path")).endswith("plan.txt") and str(entry.get("conflict_path")).endswith(copy)
                   for entry in conflicts), conflicts


# ------------------------------------------------------------------ quota


def test_quota_exceeded_is_edquot_at_fsync_and_the_data_is_kept(tmp_path: Path) -> None:
    """The reference portal takes a per-user quota (``serve --quota``); uploads past it are refused."""
    cache = tmp_path / "cache"
    with running_portal(tmp_path / "data", "--quota", "1M") as portal, portal_view(portal) as view:
        small, big = content(40, 100_000), content(41, 2 << 20)
        with mounted(portal, tmp_path / "mnt", options=["upload_delay=0.2"], cache_dir=cache) as mount:
            write_file(mount.mountpoint / "fits.bin", small)
            view.wait_for(lambda: view.read("fits.bin") == small, what="a file within the quota")
            with open(mount.mountpoint / "too-big.bin", "wb") as file:
                file.write(big)
                file.flush()
                with pytest.raises(OSError) as raised:
                    os.fsync(file.fileno())
                assert raised.value.errno == errno.EDQUOT
                try:
                    file.close()
                except OSError as exc:  # close may report it too; that is all it may do
                    assert exc.errno == errno.EDQUOT

            assert not view.exists("too-big.bin")
            assert (mount.mountpoint / "too-big.bin").read_bytes() == big  # nothing lost here
            held = [entry for entry in status_json(mount.mountpoint)["uploads"]["pending"]
                    if entry["path"].endswith("too-big.bin")]
            assert len(held) == 1 and held[0]["state"] == "held" and held[0]["size"] == len(big), held
            assert "quota" in str(held[0]["last_error"]).lower(), held
        assert mount.process.returncode == 0, "the daemon did not exit by itself after the unmount"

        # Still kept, in the journal, across a remount.
        with mounted(portal, tmp_path / "mnt", options=["upload_delay=0.2"], cache_dir=cache) as remount:
            # Refused again at this mount (the quota is still there), and still kept.
            held = view.wait_for(lambda: [entry for entry in status_json(remount.mountpoint)["uploads"]["pending"]
                                          if entry["path"].endswith("too-big.bin") and entry["state"] == "held"],
                                 what="the refused file held again after the remount")
            assert len(held) == 1 and held[0]["size"] == len(big), held
            assert (remount.mountpoint / "too-big.bin").read_bytes() == big
        assert view.names() == {"fits.bin"}


# ------------------------------------------------------------------ full cache disk


@contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True,
                   capture_output=True, timeout=30)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True, timeout=30)


def test_full_cache_disk_is_enospc_to_the_writer_and_keeps_what_was_closed(portal: PortalProcess,
                                                                           tmp_path: Path) -> None:
    closed = {"one.bin": content(50, 3 << 20), "two.txt": b"closed before the disk filled\n"}
    with small_tmpfs(tmp_path / "small", "20m") as cache, portal_view(portal) as view:
        with mounted(portal, tmp_path / "mnt", options=[HOLD_BACK], cache_dir=cache) as mount:
            for name, data in closed.items():
                write_file(mount.mountpoint / name, data)

            chunk = content(51, 1 << 20)
            with pytest.raises(OSError) as raised:
                with open(mount.mountpoint / "huge.bin", "wb") as file:
                    for _ in range(40):  # twice what the disk holds
                        file.write(chunk)
                        file.flush()
            assert raised.value.errno in (errno.ENOSPC, errno.EDQUOT)

            os.unlink(mount.mountpoint / "huge.bin")
            assert set(os.listdir(mount.mountpoint)) == {*closed, ".snapshots"}  # the mount is alive
            for name, data in closed.items():
                assert (mount.mountpoint / name).read_bytes() == data
            write_file(mount.mountpoint / "after.txt", b"room again\n")  # and takes writes again
            expected = {**closed, "after.txt": b"room again\n"}
        # The unmount drains the queue.
        assert mount.process.returncode == 0, mount.log()[-3000:]
        assert view.tree() == expected
