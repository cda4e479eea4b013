"""The control channel: a Unix socket through which ``portalfs`` commands reach a running mount daemon.

Some things users ask of a cloud drive have no POSIX call: what is still
waiting to upload, bring back a deleted file (which has no local name to
operate on), copy on the server instead of through the network twice.  The
daemon answers them on a Unix socket; ``portalfs status``, ``undelete``,
``ls --deleted``, ``cp`` and ``unmount`` ask.

Subtleties:

* The socket's name derives from the mountpoint alone
  (:func:`control_socket_path`), so every command finds it without a
  registry, and it keeps working after the kernel unmount while the daemon
  drains its uploads.  It lives in a directory only we can enter (0700,
  owned by us, checked, never followed through a symlink), which is what
  makes the 0600 socket private; the server also refuses peers of other
  users.
* Daemons started outside a login session (systemd, before the user logged
  in) see no ``/run/user/UID`` and fall back to ``/tmp``; the client
  therefore looks in every candidate directory, not just the first.
* A local path inside the mount is mapped to names relative to the mount
  root without looking its last component up through the mount: a deleted
  file does not exist locally, and a hung daemon must not hang ``unmount``.
* The server must never take the daemon down: each connection runs in its
  own task and every failure of one request is an error reply (a
  ``VfsError`` keeps its errno; anything else is a bug, logged, ``EIO``).

Exceptions::

    ControlError        the request could not be made or failed (``.errno``)
     ├── NoDaemon       nobody answers on the socket (missing or refused)
     └── ErrorReply     the daemon answered with an error
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import socket
import stat
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import trio

from vfs.errors import VfsError

log = logging.getLogger("mount.control")

MAX_REQUEST = 1 << 20  # one request line; anything longer ends the connection
MAX_REPLY = 64 << 20  # a listing of deleted items can be long, but not unbounded
IDLE_TIMEOUT = 300.0  # a connection that sends nothing for this long is closed
FSTYPE = "fuse.portalfs"
MOUNTINFO = Path("/proc/self/mountinfo")
RUN_USER = Path("/run/user")
TMP = Path("/tmp")
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes including the NUL


class ControlError(Exception):
    """A request failed (an error reply) or could not be made."""

    def __init__(self, message: str, code: int = errno.EIO) -> None:
        super().__init__(message)
        self.errno = code


class NoDaemon(ControlError):
    """No daemon answers on the control socket of a mountpoint."""


class ErrorReply(ControlError):
    """The daemon refused or failed the request; the message and errno are its own."""


class Control(Protocol):
    """What the daemon offers on the channel; paths are names relative to the mount root.

    Methods raise ``VfsError`` for failures a user caused; anything else is a bug.
    """

    def status(self) -> dict[str, Any]: ...
    async def undelete(self, path: tuple[str, ...]) -> None: ...
    async def list_deleted(self, path: tuple[str, ...]) -> list[dict[str, Any]]: ...
    async def copy(self, source: tuple[str, ...], target: tuple[str, ...]) -> None: ...
    def skip_drain(self) -> None: ...


# --- where things are ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MountEntry:
    mountpoint: Path
    fstype: str


def read_mounts(mountinfo: Path | None = None) -> list[MountEntry]:
    """The mount table in mount order (a later entry on the same path is on top)."""
    entries = []
    for line in (mountinfo or MOUNTINFO).read_bytes().splitlines():
        fields = line.split(b" ")
        try:
            fstype = fields[fields.index(b"-", 6) + 1]
        except (ValueError, IndexError):
            continue
        raw = re.sub(rb"\\([0-7]{3})", lambda match: bytes([int(match.group(1), 8)]), fields[4])
        entries.append(MountEntry(Path(os.fsdecode(raw)), os.fsdecode(fstype)))
    return entries


def canonical_path(path: Path, mounts: list[MountEntry] | None = None) -> Path:
    """``path`` absolute and without symlinks, its last component not looked up when avoidable.

    The parent is resolved and the name appended: the name need not exist
    (a deleted file), and a mountpoint is never asked about itself.  Only a
    last component that is a local symlink is followed.
    """
    path = Path.cwd() / path
    if path.name in ("", ".."):
        return path.resolve()
    candidate = path.parent.resolve() / path.name
    if mounts is None:
        mounts = read_mounts()
    if any(entry.mountpoint == candidate for entry in mounts):
        return candidate
    try:
        if stat.S_ISLNK(os.lstat(candidate).st_mode):
            return candidate.resolve()
    except OSError:
        pass
    return candidate


def mount_relative(path: Path, *, mountinfo: Path | None = None) -> tuple[Path, tuple[str, ...]]:
    """The portalfs mountpoint holding ``path``, and ``path`` as names relative to it."""
    mounts = read_mounts(mountinfo)
    local = canonical_path(path, mounts)
    holder: MountEntry | None = None
    for entry in mounts:  # the deepest mount holding the path; on a tie the later one, which is on top
        holds = entry.mountpoint == local or entry.mountpoint in local.parents
        if holds and (holder is None or len(entry.mountpoint.parts) >= len(holder.mountpoint.parts)):
            holder = entry
    if holder is None or holder.fstype != FSTYPE:
        raise ControlError(f"{path} is not inside a portalfs mount", errno.EINVAL)
    return holder.mountpoint, local.parts[len(holder.mountpoint.parts):]


def _private_dir(path: Path, create: bool) -> Path:
    """``path`` as a directory only we can enter (made 0700 if ``create``); refuse anything else."""
    if create:
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise ControlError(f"cannot create {path}: {exc.strerror}", exc.errno or errno.EIO) from None
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        if create:
            raise ControlError(f"{path} vanished while being created", errno.ENOENT) from None
        return path  # nothing there: the client will find no socket in it
    if not stat.S_ISDIR(info.st_mode):
        problem = "is not a directory"
    elif info.st_uid != os.geteuid():
        problem = f"belongs to uid {info.st_uid}, not to us"
    elif info.st_mode & 0o077:
        problem = f"is accessible to others (mode {stat.S_IMODE(info.st_mode):04o})"
    else:
        return path
    raise ControlError(f"refusing to use {path}: it {problem}", errno.EACCES)


def _runtime_dirs() -> list[Path]:
    """Candidate runtime directories, preferred first (the daemon uses the first)."""
    candidates = []
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg) and os.path.isdir(xdg):
        candidates.append(Path(xdg))
    run_user = RUN_USER / str(os.getuid())
    if run_user.is_dir():
        candidates.append(run_user)
    candidates.append(TMP / f"portalfs-{os.getuid()}")
    return list(dict.fromkeys(candidates))


def _socket_in(runtime: Path, mountpoint: Path, create: bool) -> Path:
    if runtime.parent == TMP:
        _private_dir(runtime, create)  # /tmp is everybody's: its subdirectory must be ours
    digest = hashlib.sha256(os.fsencode(mountpoint)).hexdigest()[:16]
    path = _private_dir(runtime / "portalfs", create) / f"{digest}.sock"
    if len(os.fsencode(path)) > _SUN_PATH_MAX:
        raise ControlError(f"the control socket path is too long for a Unix socket: {path}", errno.ENAMETOOLONG)
    return path


def control_socket_path(mountpoint: Path, *, create: bool = True) -> Path:
    """Where the daemon of ``mountpoint`` listens: ``<runtime>/portalfs/<sha256 prefix>.sock``.

    ``create`` makes the private directories (the daemon); the client passes False.
    """
    return _socket_in(_runtime_dirs()[0], canonical_path(mountpoint), create)


# --- the server ---------------------------------------------------------------------------------------------


async def serve_control(path: Path, control: Control, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Answer requests on a Unix socket at ``path`` until cancelled; then remove the socket file."""
    await _clear_stale(path)
    listening = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await listening.bind(os.fspath(path))
        os.chmod(path, 0o600)  # the directory is private already; this says so twice
        listening.listen(64)
        identity = os.stat(path)
    except OSError as exc:
        listening.close()
        raise ControlError(f"cannot listen on {path}: {exc.strerror}", exc.errno or errno.EIO) from None
    listener = trio.SocketListener(listening)
    try:
        async with listener, trio.open_nursery() as nursery:
            task_status.started()
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS):
                        raise
                    log.warning("control socket: %s", exc.strerror)  # out of descriptors: wait, do not die
                    await trio.sleep(0.1)
                    continue
                nursery.start_soon(_connection, stream, control)
    finally:
        # Remove the file only if it is still ours: a new daemon may have replaced a socket we left.
        try:
            now = os.stat(path)
            if (now.st_dev, now.st_ino) == (identity.st_dev, identity.st_ino):
                os.unlink(path)
        except OSError:
            pass


async def _clear_stale(path: Path) -> None:
    """Remove a socket file nobody listens on; refuse a live one or anything else."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ControlError(f"{path} exists and is not a socket; refusing to replace it", errno.EEXIST)
    with trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            with trio.fail_after(5):
                await probe.connect(os.fspath(path))
        except (ConnectionRefusedError, FileNotFoundError):
            pass  # a daemon that died without cleaning up
        except (OSError, trio.TooSlowError) as exc:
            raise ControlError(f"cannot check the control socket {path}: {exc}", errno.EIO) from None
        else:
            raise ControlError(f"another portalfs daemon already serves this mountpoint ({path})", errno.EADDRINUSE)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _peer_uid(stream: trio.SocketStream) -> int:
    raw = stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)[1]


async def _connection(stream: trio.SocketStream, control: Control) -> None:
    """Answer one client's requests, one line each, until it hangs up; never raise."""
    try:
        async with stream:
            if _peer_uid(stream) not in (os.geteuid(), 0):
                await stream.send_all(_error(errno.EACCES, "not your mount"))
                return
            buffer = bytearray()
            while True:
                line = None
                with trio.move_on_after(IDLE_TIMEOUT):  # bounds the wait for a request, not its work
                    try:
                        line = await _receive_line(stream, buffer)
                    except _TooLarge:
                        await stream.send_all(_error(errno.EMSGSIZE, f"request longer than {MAX_REQUEST} bytes"))
                        await _discard(stream)
                        return
                if line is None:
                    return
                await stream.send_all(await _answer(control, line))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return  # the client went away; nothing to tell it
    except Exception:
        log.exception("control connection failed")


async def _discard(stream: trio.SocketStream) -> None:
    """Read what the client still sends, for a moment: closing on unread data would reset the connection
    and lose the reply just sent."""
    await stream.send_eof()
    with trio.move_on_after(1):
        while await stream.receive_some(1 << 16):
            pass


class _TooLarge(Exception):
    pass


async def _receive_line(stream: trio.SocketStream, buffer: bytearray) -> bytes | None:
    """The next request line, or None at end of input; _TooLarge for a line longer than MAX_REQUEST."""
    while True:
        end = buffer.find(b"\n")
        if end > MAX_REQUEST or (end < 0 and len(buffer) > MAX_REQUEST):
            raise _TooLarge
        if end >= 0:
            line = bytes(buffer[:end])
            del buffer[:end + 1]
            return line
        chunk = await stream.receive_some(65536)
        if not chunk:
            line = bytes(buffer)
            buffer.clear()
            return line if line.strip() else None
        buffer += chunk


def _error(code: int, message: str) -> bytes:
    return json.dumps({"ok": False, "errno": code, "error": message}).encode() + b"\n"


async def _answer(control: Control, line: bytes) -> bytes:
    try:
        request = json.loads(line)
    except (ValueError, RecursionError):
        return _error(errno.EINVAL, "malformed request: not JSON")
    op = request.get("op") if isinstance(request, dict) else None
    try:
        result = await _dispatch(control, request)
        return json.dumps({"ok": True, "result": result}).encode() + b"\n"
    except VfsError as exc:
        return _error(exc.errno, str(exc))
    except Exception:
        log.exception("control request %r failed", op)
        return _error(errno.EIO, "internal error in the portalfs daemon (see its log)")


async def _dispatch(control: Control, request: Any) -> Any:
    if not isinstance(request, dict):
        raise VfsError(errno.EINVAL, "malformed request: not a JSON object")
    op = request.get("op")
    if op == "status":
        return control.status()
    if op == "undelete":
        await control.undelete(_names(request, "path"))
        return None
    if op == "list_deleted":
        return await control.list_deleted(_names(request, "path"))
    if op == "copy":
        await control.copy(_names(request, "source"), _names(request, "target"))
        return None
    if op == "skip_drain":
        control.skip_drain()
        return None
    raise VfsError(errno.EINVAL, f"unknown operation {op!r}")


def _names(request: dict[str, Any], key: str) -> tuple[str, ...]:
    value = request.get(key)
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise VfsError(errno.EINVAL, f"malformed request: {key!r} must be a list of names")
    for name in value:
        if name in ("", ".", "..") or "/" in name or "\0" in name:
            raise VfsError(errno.EINVAL, f"malformed request: {name!r} is not a file name")
    return tuple(value)


# --- the client ---------------------------------------------------------------------------------------------


def ask(mountpoint: Path, request: dict[str, Any], timeout: float = 30) -> Any:
    """Send one request to the daemon of ``mountpoint`` and return its result (blocking)."""
    where = canonical_path(mountpoint)
    payload = json.dumps(request).encode() + b"\n"
    for runtime in _runtime_dirs():
        path = _socket_in(runtime, where, create=False)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect(os.fspath(path))
            except (FileNotFoundError, ConnectionRefusedError):
                continue
            except OSError as exc:
                raise ControlError(f"cannot reach the daemon of {where}: {exc.strerror}", exc.errno or errno.EIO) from None
            try:
                sock.sendall(payload)
                raw = _read_reply(sock, time.monotonic() + timeout)
            except TimeoutError:
                raise ControlError(f"the daemon of {where} did not answer within {timeout:g} s", errno.ETIMEDOUT) from None
            except OSError as exc:
                raise ControlError(f"the daemon of {where} failed to answer: {exc.strerror}", exc.errno or errno.EIO) from None
        return _result(raw, where)
    raise NoDaemon(f"no portalfs daemon serves {where}", errno.ENOENT)


def _read_reply(sock: socket.socket, deadline: float) -> bytes:
    reply = bytearray()
    while b"\n" not in reply:
        if len(reply) > MAX_REPLY:
            raise ControlError(f"reply longer than {MAX_REPLY} bytes", errno.EMSGSIZE)
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        reply += chunk
    return bytes(reply)


def _result(raw: bytes, where: Path) -> Any:
    try:
        reply = json.loads(raw)
        ok = reply["ok"]
    except (ValueError, TypeError, KeyError):
        raise ControlError(f"the daemon of {where} sent no valid reply", errno.EIO) from None
    if ok:
        return reply.get("result")
    code = reply.get("errno")
    raise ErrorReply(str(reply.get("error") or "failed"), code if isinstance(code, int) else errno.EIO)
