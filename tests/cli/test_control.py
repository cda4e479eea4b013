"""The control channel and the commands that use it, as a user runs them against a served socket.

``serve_control`` runs in the test's trio loop with a small fake ``Control``
standing in for the daemon's filesystem: these tests judge the channel (one
JSON line each way, errors as errno, a server no request can crash, private
socket files) and the commands (``portalfs status/undelete/ls --deleted/cp/
unmount``: one line and status 1 for every failure), not what the daemon
does with a request — that is tested through a real mount.  The commands run
through ``mount.cli.main`` in a worker thread; a fake mount table lists the
test's directory as a portalfs mount, so local paths map to mount paths as
they would in a mounted drive.  One test maps paths against a real mount.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import socket
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from mount import cli, control, status_text
from mount.control import ControlError, ErrorReply, NoDaemon, ask, control_socket_path, mount_relative, serve_control
from tests.cli.conftest import BIN
from vfs.errors import VfsError

MiB = 1 << 20

SNAPSHOT: dict[str, Any] = {
    "mountpoint": "/mnt/x", "pid": 123, "portal": "https://127.0.0.1:8443", "user": "alice",
    "uploads": {
        "pending": [
            {"path": "Docs/a.txt", "size": 10 * MiB, "age": 3.2, "state": "pending", "attempts": 0, "last_error": None},
            {"path": "Docs/b.bin", "size": 2 * MiB, "age": 75, "state": "uploading", "attempts": 0, "last_error": None},
            {"path": "Docs/c.txt", "size": MiB // 2, "age": 3900, "state": "pending", "attempts": 2,
             "last_error": "503 Service Unavailable"},
            {"path": "Docs/held.txt", "size": 5, "age": 90000, "state": "held", "attempts": 0, "last_error": None},
            {"path": ".~lock.a.odt#", "size": 1, "age": 1, "state": "local", "attempts": 0, "last_error": None},
        ],
        "in_flight": [{"path": "Docs/b.bin", "size": 2 * MiB, "sent": MiB}],
        "uploaded": 4, "bytes_uploaded": 1234,
    },
    "conflicts": [{"path": "Docs/a.txt", "conflict_path": "Docs/a (conflict 2026-11-22 101010).txt", "when": 1.7e9}],
    "cache": {"memory_bytes": 3 * MiB, "disk_bytes": 2 << 30, "disk_limit": 10 << 30, "staging_bytes": 0},
    "errors": [{"when": 1.7e9, "message": "upload of Docs/c.txt failed: 503"}],
}


class FakeControl:
    """The daemon's side as the channel sees it: records requests, answers from plain data."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.snapshot: dict[str, Any] = {"mountpoint": "/mnt/x", "uploads": {"pending": [], "in_flight": []}}
        self.deleted: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        self.undeleted: list[tuple[str, ...]] = []
        self.copies: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        self.existing: set[tuple[str, ...]] = set()
        self.log = log if log is not None else []
        self.status_calls = 0
        self.copy_gate: trio.Event | None = None
        self.broken = False

    def status(self) -> dict[str, Any]:
        self.status_calls += 1
        self.log.append("status")
        return self.snapshot

    async def undelete(self, path: tuple[str, ...]) -> None:
        folder, name = path[:-1], path[-1]
        if name not in (item["name"] for item in self.deleted.get(folder, [])):
            raise VfsError(errno.ENOENT, f"{'/'.join(path)} is not among the deleted items")
        self.undeleted.append(path)

    async def list_deleted(self, path: tuple[str, ...]) -> list[dict[str, Any]]:
        if path not in self.deleted:
            raise VfsError(errno.ENOENT)
        return self.deleted[path]

    async def copy(self, source: tuple[str, ...], target: tuple[str, ...]) -> None:
        if self.broken:
            raise RuntimeError("a bug in the daemon")
        if self.copy_gate is not None:
            await self.copy_gate.wait()
        if target in self.existing:
            raise VfsError(errno.EEXIST, f"{'/'.join(target)} exists")
        self.copies.append((source, target))

    def skip_drain(self) -> None:
        self.log.append("skip_drain")


@pytest.fixture(autouse=True)
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private ``$XDG_RUNTIME_DIR`` short enough for a socket path; no real /run/user or /tmp fallback."""
    path = Path(tempfile.mkdtemp(prefix="pfs-", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    monkeypatch.setattr(control, "RUN_USER", path / "run-user")
    monkeypatch.setattr(control, "TMP", path / "tmp")
    (path / "tmp").mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def mount_line(number: int, mountpoint: Path, fstype: str) -> str:
    escaped = str(mountpoint).replace("\\", "\\134").replace(" ", "\\040")
    return f"{number} 1 0:{number} / {escaped} rw,relatime shared:1 - {fstype} portalfs rw\n"


@pytest.fixture
def mnt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory the (fake) mount table lists as a portalfs mount, with a folder ``Docs``."""
    mountpoint = tmp_path / "my drive"
    (mountpoint / "Docs").mkdir(parents=True)
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(mount_line(1, Path("/"), "ext4") + mount_line(2, mountpoint, "fuse.portalfs"))
    monkeypatch.setattr(control, "MOUNTINFO", mountinfo)
    return mountpoint


@pytest.fixture
async def daemon(mnt: Path, nursery: trio.Nursery) -> FakeControl:
    fake = FakeControl()
    await nursery.start(serve_control, control_socket_path(mnt), fake)
    return fake


async def portalfs(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``portalfs ARGV`` in a worker thread (the server keeps running in this loop): status, stdout, stderr."""
    with trio.fail_after(30):
        code = await trio.to_thread.run_sync(cli.main, list(argv), abandon_on_cancel=True)
    out, err = capsys.readouterr()
    return code, out, err


def one_line(code: int, err: str) -> str:
    assert code == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("portalfs: "), err
    return lines[0]


async def exchange(path: Path, *lines: bytes) -> list[dict[str, Any]]:
    """Send raw request lines on one connection; the replies, one per line."""
    async with await trio.open_unix_socket(os.fspath(path)) as stream:
        replies = []
        received = b""
        for line in lines:
            await stream.send_all(line)
            while received.count(b"\n") <= len(replies):
                chunk = await stream.receive_some()
                assert chunk, f"the server hung up after {replies}"
                received += chunk
            replies.append(json.loads(received.splitlines()[len(replies)]))
        return replies


# --- status ---------------------------------------------------------------------------------------------------


async def test_status_shows_uploads_conflicts_cache_and_errors_as_text_and_json(
    mnt: Path, daemon: FakeControl, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.snapshot = SNAPSHOT
    code, out, err = await portalfs(capsys, "status", str(mnt))
    assert (code, err) == (0, "")
    assert "alice on https://127.0.0.1:8443 (pid 123)" in out
    assert "Uploads: 5 pending (12.5 MiB); 4 uploaded (1.2 KiB) since mounted" in out
    a_line = next(line for line in out.splitlines() if line.endswith("Docs/a.txt"))
    assert "10.0 MiB" in a_line and "3 s" in a_line
    assert "1 h 5 min" in out and "(2 attempts; last error: 503 Service Unavailable)" in out
    assert "1 d 1 h" in out and "held" in out
    assert "Docs/b.bin: 1.0 MiB of 2.0 MiB (50%)" in out
    assert "→ Docs/a (conflict 2026-11-22 101010).txt" in out
    assert "Cache: memory 3.0 MiB, disk 2.0 GiB of 10.0 GiB, staged writes 0 B" in out
    assert "upload of Docs/c.txt failed: 503" in out
    code, out, _ = await portalfs(capsys, "status", "--json", str(mnt))
    assert (code, json.loads(out)) == (0, SNAPSHOT)  # --json: the daemon's snapshot as it is


async def test_status_of_an_idle_mount_says_nothing_pending(
    mnt: Path, daemon: FakeControl, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await portalfs(capsys, "status", str(mnt))
    assert code == 0
    assert "Uploads: nothing pending" in out


def test_status_text_tolerates_missing_and_odd_keys() -> None:
    assert "nothing pending" in status_text.render({})
    odd = {"uploads": {"pending": ["Docs/x", {"size": "big"}], "in_flight": [{"path": "y", "size": 0}]},
           "conflicts": "none", "cache": {"disk_bytes": None}, "errors": [{"when": "yesterday"}, "plain"]}
    text = status_text.render(odd)
    assert "Docs/x" in text and "Cache: disk ?" in text and "plain" in text
    assert status_text.render("not a dict") == status_text.render({})  # type: ignore[arg-type]
    assert [status_text.human_size(n) for n in (0, 1023, 1024, 1536, 12.5 * MiB, 3 << 40)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 KiB", "12.5 MiB", "3.0 TiB"]
    assert [status_text.human_age(s) for s in (0.4, 59, 60, 3600, 3660, 86400, 90000)] == [
        "0 s", "59 s", "1 min", "1 h", "1 h 1 min", "1 d", "1 d 1 h"]


# --- undelete, ls --deleted, cp -----------------------------------------------------------------------------


async def test_undelete_maps_a_path_that_no_longer_exists(
    mnt: Path, daemon: FakeControl, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon.deleted[("Docs",)] = [{"name": "gone.txt", "is_dir": False, "size": 3, "mtime": 1.7e9}]
    assert not (mnt / "Docs" / "gone.txt").exists()
    assert await portalfs(capsys, "undelete", str(mnt / "Docs" / "gone.txt")) == (0, "", "")
    monkeypatch.chdir(mnt / "Docs")
    assert await portalfs(capsys, "undelete", "../Docs/./gone.txt") == (0, "", "")
    assert daemon.undeleted == [("Docs", "gone.txt")] * 2


async def test_undelete_failures_are_one_line(mnt: Path, daemon: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = await portalfs(capsys, "undelete", str(mnt / "Docs" / "never.txt"))
    assert one_line(code, err) == (
        f"portalfs: cannot undelete {mnt}/Docs/never.txt: Docs/never.txt is not among the deleted items")
    code, _, err = await portalfs(capsys, "undelete", str(mnt))
    assert "is the root of the mount" in one_line(code, err)
    code, _, err = await portalfs(capsys, "undelete", "/etc/passwd")
    assert one_line(code, err) == "portalfs: /etc/passwd is not inside a portalfs mount"


async def test_ls_deleted_lists_name_size_and_time(
    mnt: Path, daemon: FakeControl, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.deleted[("Docs",)] = [{"name": "zeta.txt", "is_dir": False, "size": 2048, "mtime": 1.7e9},
                                 {"name": "Old", "is_dir": True, "size": 0, "mtime": 1.7e9}]
    code, out, _ = await portalfs(capsys, "ls", "--deleted", str(mnt / "Docs"))
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[-1] for line in lines] == ["Old/", "zeta.txt"]
    assert lines[1].split()[:2] == ["2.0", "KiB"] and status_text.local_time(1.7e9) in lines[1]
    code, _, err = await portalfs(capsys, "ls", "--deleted", str(mnt / "Nowhere"))
    assert one_line(code, err) == f"portalfs: cannot list deleted items of {mnt}/Nowhere: No such file or directory"
    code, _, err = await portalfs(capsys, "ls", str(mnt / "Docs"))
    assert "add --deleted" in one_line(code, err)


async def test_cp_copies_within_the_mount_like_cp(
    mnt: Path, daemon: FakeControl, capsys: pytest.CaptureFixture[str]
) -> None:
    (mnt / "Docs" / "a.txt").write_text("a")
    assert await portalfs(capsys, "cp", str(mnt / "Docs" / "a.txt"), str(mnt / "b.txt")) == (0, "", "")
    assert await portalfs(capsys, "cp", str(mnt / "Docs" / "a.txt"), str(mnt)) == (0, "", "")
    assert await portalfs(capsys, "cp", str(mnt / "Docs"), str(mnt / "Docs copy")) == (0, "", "")
    assert daemon.copies == [(("Docs", "a.txt"), ("b.txt",)), (("Docs", "a.txt"), ("a.txt",)),
                             (("Docs",), ("Docs copy",))]


async def test_cp_failures_are_one_line(
    mnt: Path, daemon: FakeControl, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    with control.MOUNTINFO.open("a") as table:
        table.write(mount_line(3, other, "fuse.portalfs"))
    daemon.existing.add(("b.txt",))
    failures = {
        ("cp", str(mnt / "a.txt"), str(mnt / "b.txt")): f"portalfs: cannot copy {mnt}/a.txt to {mnt}/b.txt: b.txt exists",
        ("cp", str(mnt / "a.txt"), str(other / "a.txt")): "are in different mounts",
        ("cp", str(mnt / "a.txt"), "/tmp/a.txt"): "portalfs: /tmp/a.txt is not inside a portalfs mount",
        ("cp", str(mnt), str(mnt / "Docs")): "cannot copy the root of the mount",
        ("cp", str(mnt / "Docs"), str(mnt / "Docs" / "inner")): "into itself",
        ("cp", str(mnt / "a.txt"), str(mnt / "nofolder") + "/"): "nofolder/ is not a folder",
    }
    for argv, expected in failures.items():
        code, _, err = await portalfs(capsys, *argv)
        assert expected in one_line(code, err)
    assert daemon.copies == []


async def test_a_bug_in_the_daemon_is_eio_logged_with_its_traceback(
    mnt: Path, daemon: FakeControl, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    daemon.broken = True
    with caplog.at_level(logging.ERROR, logger="mount.control"):
        code, _, err = await portalfs(capsys, "cp", str(mnt / "a"), str(mnt / "b"))
    assert "internal error in the portalfs daemon" in one_line(code, err)
    [record] = caplog.records
    assert record.exc_info and "a bug in the daemon" in str(record.exc_info[1])
    with pytest.raises(ErrorReply) as raised:
        await trio.to_thread.run_sync(ask, mnt, {"op": "copy", "source": ["a"], "target": ["b"]})
    assert raised.value.errno == errno.EIO
    assert await trio.to_thread.run_sync(ask, mnt, {"op": "status"}) == daemon.snapshot


# --- the channel ----------------------------------------------------------------------------------------------


async def test_malformed_requests_get_error_replies_and_the_connection_goes_on(mnt: Path, daemon: FakeControl) -> None:
    bad = [b"not json\n", b"[1, 2]\n", b'{"op": "format c:"}\n', b"\xff\xfe\xfd\n", b'{"op": "undelete"}\n',
           b'{"op": "undelete", "path": "Docs/a"}\n', b'{"op": "undelete", "path": ["..", "etc"]}\n',
           b'{"op": "list_deleted", "path": ["a/b"]}\n', b'{"op": "copy", "source": ["a"]}\n', b"[" * 100000 + b"\n"]
    replies = await exchange(control_socket_path(mnt), *bad, b'{"op": "status"}\n')
    for request, reply in zip(bad, replies[:-1]):
        assert reply["ok"] is False and reply["errno"] == errno.EINVAL, request[:40]
        assert reply["error"].startswith(("malformed request", "unknown operation")), reply
    assert replies[-1] == {"ok": True, "result": daemon.snapshot}
    assert daemon.undeleted == [] and daemon.copies == []


async def test_an_endless_request_is_refused_and_the_server_goes_on(mnt: Path, daemon: FakeControl) -> None:
    path = control_socket_path(mnt)
    async with await trio.open_unix_socket(os.fspath(path)) as stream:
        try:
            await stream.send_all(b"x" * (control.MAX_REQUEST + 65536 * 2))
        except trio.BrokenResourceError:
            pass  # it hung up while we were still sending
        received = b""
        while chunk := await stream.receive_some():
            received += chunk
    reply = json.loads(received)
    assert (reply["ok"], reply["errno"]) == (False, errno.EMSGSIZE)
    assert await exchange(path, b'{"op": "status"}\n') == [{"ok": True, "result": daemon.snapshot}]


async def test_each_connection_is_served_on_its_own_and_a_vanished_client_harms_nothing(
    mnt: Path, daemon: FakeControl
) -> None:
    path = control_socket_path(mnt)
    daemon.copy_gate = trio.Event()
    stream = await trio.open_unix_socket(os.fspath(path))
    await stream.send_all(b'{"op": "copy", "source": ["a"], "target": ["b"]}\n')
    with trio.fail_after(5):  # the slow copy holds up no one else
        assert await exchange(path, b'{"op": "status"}\n', b'{"op": "skip_drain"}\n') == [
            {"ok": True, "result": daemon.snapshot}, {"ok": True, "result": None}]
    await stream.aclose()  # hang up before the answer
    daemon.copy_gate.set()
    with trio.fail_after(5):
        while not daemon.copies:
            await trio.sleep(0.01)
    assert await exchange(path, b'{"op": "status"}\n') == [{"ok": True, "result": daemon.snapshot}]


async def test_socket_file_is_private_deterministic_and_removed_when_the_server_stops(mnt: Path, runtime: Path) -> None:
    path = control_socket_path(mnt)
    digest = hashlib.sha256(os.fsencode(str(mnt.resolve()))).hexdigest()[:16]
    assert path == runtime / "portalfs" / f"{digest}.sock"
    assert control_socket_path(mnt / "Docs" / "..") == path == control_socket_path(Path(os.path.relpath(mnt)))
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_control, path, FakeControl())
        assert stat.S_ISSOCK(path.lstat().st_mode) and stat.S_IMODE(path.lstat().st_mode) == 0o600
        nursery.cancel_scope.cancel()
    assert not path.exists()


async def test_a_stale_socket_is_replaced_a_live_one_is_not(mnt: Path) -> None:
    path = control_socket_path(mnt)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(os.fspath(path))  # a daemon killed with -9 leaves this behind
    with pytest.raises(NoDaemon, match=f"no portalfs daemon serves {mnt}"):
        ask(mnt, {"op": "status"})
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_control, path, FakeControl())
        assert (await exchange(path, b'{"op": "status"}\n'))[0]["ok"]
        with pytest.raises(ControlError, match="another portalfs daemon already serves this mountpoint"):
            await serve_control(path, FakeControl())
        nursery.cancel_scope.cancel()
    path.write_text("not a socket")
    with pytest.raises(ControlError, match="exists and is not a socket"):
        await serve_control(path, FakeControl())


def test_a_socket_directory_others_can_enter_or_own_is_refused(mnt: Path, runtime: Path) -> None:
    path = control_socket_path(mnt)
    path.parent.chmod(0o755)
    with pytest.raises(ControlError, match="accessible to others"):
        control_socket_path(mnt)
    with pytest.raises(ControlError, match="accessible to others"):
        ask(mnt, {"op": "status"})
    path.parent.chmod(0o700)
    path.parent.rmdir()
    path.parent.symlink_to(runtime)
    with pytest.raises(ControlError, match="is not a directory"):
        control_socket_path(mnt)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving the directory to another uid needs root")
def test_a_socket_directory_owned_by_another_uid_is_refused(mnt: Path) -> None:
    path = control_socket_path(mnt)
    os.chown(path.parent, 65534, 65534)
    with pytest.raises(ControlError, match="belongs to uid 65534"):
        control_socket_path(mnt)


async def test_without_a_runtime_directory_the_socket_lives_in_a_private_tmp_directory(
    mnt: Path, runtime: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A daemon started by systemd has no XDG_RUNTIME_DIR and maybe no /run/user/UID; a command run in a
    # login session has both, and must still find it.
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    path = control_socket_path(mnt)
    fallback = runtime / "tmp" / f"portalfs-{os.getuid()}"
    assert path.parent == fallback / "portalfs"
    assert stat.S_IMODE(fallback.stat().st_mode) == stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_control, path, FakeControl())
        (runtime / "run-user" / str(os.getuid())).mkdir(parents=True)
        assert control_socket_path(mnt, create=False).is_relative_to(runtime / "run-user")
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
        code, out, _ = await portalfs(capsys, "status", str(mnt))
        assert code == 0 and "nothing pending" in out
        nursery.cancel_scope.cancel()


async def test_no_daemon_is_one_clear_line(mnt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = await portalfs(capsys, "status", str(mnt))
    assert one_line(code, err) == f"portalfs: no portalfs daemon serves {mnt}"
    code, _, err = await portalfs(capsys, "undelete", str(mnt / "Docs" / "x"))
    assert one_line(code, err) == f"portalfs: no portalfs daemon serves {mnt}"


async def test_the_installed_command_talks_to_the_daemon_without_loading_fuse(mnt: Path, daemon: FakeControl) -> None:
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    daemon.snapshot = SNAPSHOT
    result = await trio.run_process([str(BIN / "portalfs"), "status", str(mnt)], capture_stdout=True,
                                    capture_stderr=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert "Uploads: 5 pending (12.5 MiB)" in result.stdout.decode()
    # The command itself, run to the end in a fresh interpreter, never loads the FUSE stack.
    script = ("import sys; from mount import cli; code = cli.main(['status', sys.argv[1]]);"
              " assert 'pyfuse3' not in sys.modules, 'status loaded pyfuse3'; sys.exit(code)")
    await trio.run_process([sys.executable, "-c", script, str(mnt)], env=env, capture_stdout=True)


# --- unmount --------------------------------------------------------------------------------------------------


@pytest.fixture
def kernel_unmounts(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """``fusermount3 -u`` as a successful no-op (there is no kernel mount here); the calls."""
    calls: list[Path] = []
    monkeypatch.setattr(cli, "kernel_unmount", lambda mountpoint: calls.append(mountpoint))
    monkeypatch.setattr(cli, "POLL_INTERVAL", 0.01)
    monkeypatch.setattr(cli, "PROGRESS_EVERY", 0.2)
    return calls


async def test_unmount_no_wait_tells_the_daemon_first(
    mnt: Path, daemon: FakeControl, kernel_unmounts: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.snapshot = SNAPSHOT
    assert await portalfs(capsys, "unmount", "--no-wait", str(mnt)) == (0, "", "")
    assert daemon.log == ["skip_drain"] and kernel_unmounts == [mnt]


async def test_unmount_waits_while_the_daemon_drains_and_says_so(
    mnt: Path, kernel_unmounts: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeControl()
    fake.snapshot = SNAPSHOT
    daemon_scope = trio.CancelScope()

    async def run_daemon(task_status: trio.TaskStatus[None]) -> None:
        with daemon_scope:
            await serve_control(control_socket_path(mnt), fake, task_status=task_status)

    async def drain() -> None:
        while not kernel_unmounts:
            await trio.sleep(0.01)
        await trio.sleep(0.5)
        fake.snapshot = {**SNAPSHOT, "uploads": {"pending": SNAPSHOT["uploads"]["pending"][2:]}}
        await trio.sleep(0.5)
        daemon_scope.cancel()  # the daemon is done and exits

    async with trio.open_nursery() as nursery:
        await nursery.start(run_daemon)
        nursery.start_soon(drain)
        code, _, err = await portalfs(capsys, "unmount", str(mnt))
    assert code == 0, err
    lines = err.splitlines()
    assert lines[0] == "portalfs: waiting for 3 uploads (12.5 MiB) to finish…"  # not the held and local ones
    assert lines[-1] == "portalfs: waiting for 1 upload (512.0 KiB) to finish…"
    assert 2 <= len(lines) <= 8  # at most one line per PROGRESS_EVERY


async def test_unmount_without_a_daemon_behaves_as_before(
    tmp_path: Path, kernel_unmounts: list[Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await portalfs(capsys, "unmount", str(tmp_path)) == (0, "", "")
    assert kernel_unmounts == [tmp_path]
    monkeypatch.setattr(cli, "kernel_unmount", lambda mountpoint: "fusermount3: entry for it not found")
    code, _, err = await portalfs(capsys, "unmount", str(tmp_path))
    assert one_line(code, err) == f"portalfs: cannot unmount {tmp_path}: fusermount3: entry for it not found"


# --- paths ----------------------------------------------------------------------------------------------------


def test_mount_relative_maps_local_paths_to_names(mnt: Path, tmp_path: Path) -> None:
    assert mount_relative(mnt) == (mnt, ())
    assert mount_relative(mnt / "Docs" / "deleted folder" / "file") == (mnt, ("Docs", "deleted folder", "file"))
    link = tmp_path / "shortcut"
    link.symlink_to(mnt / "Docs")
    assert mount_relative(link) == (mnt, ("Docs",))
    assert mount_relative(link / "x.txt") == (mnt, ("Docs", "x.txt"))
    with control.MOUNTINFO.open("a") as table:  # something else mounted on top of a folder inside
        table.write(mount_line(3, mnt / "Docs", "tmpfs"))
    with pytest.raises(ControlError, match="is not inside a portalfs mount"):
        mount_relative(mnt / "Docs" / "x.txt")


def test_mount_relative_refuses_paths_outside_every_portalfs_mount(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match=f"{tmp_path}/x is not inside a portalfs mount"):
        mount_relative(tmp_path / "x")  # the real mount table


@pytest.mark.fuse
def test_mount_relative_in_a_real_mount(sample_portal: Any, tmp_path: Path) -> None:
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        pytest.skip("no /dev/fuse or fusermount3 on this machine")
    from tests.support.mount_process import mounted

    with mounted(sample_portal, tmp_path / "drive") as mount:
        folder = next(entry for entry in mount.mountpoint.iterdir() if entry.is_dir())
        assert mount_relative(folder / "no such file") == (mount.mountpoint, (folder.name, "no such file"))
