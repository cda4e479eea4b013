"""The mounts a benchmark compares: portalfs, and ``rclone mount`` on the same portal.

Both are context managers that mount alice's ``My Files`` of a running
reference portal at a mountpoint with a given cache directory, yield a
:class:`Mount` (its root, the daemon's pid for CPU accounting, and the
mount's own transfer counter when it has one) and always unmount.  rclone
uses its WebDAV backend on ``/ServicesPortal/webdav`` with ``--vfs-cache-mode
full`` (the mode in which it caches like portalfs does), and its remote-control
API on loopback only to read its byte count.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.mount_process import is_mounted, mounted, unmount
from tests.support.portal_process import PortalProcess

USER = "alice"
RCLONE_REMOTE = "portal"
MOUNT_TIMEOUT = 60.0


def no_count() -> int | None:
    return None


@dataclass
class Mount:
    root: Path
    pid: int
    #: the mount's own running total of transferred bytes, when it has one
    received: Callable[[], int | None] = no_count


class PortalfsMounter:
    name = "portalfs"

    def __init__(self, portal: PortalProcess, mountpoint: Path, options: Sequence[str] = ()) -> None:
        self.portal, self.mountpoint, self.options = portal, mountpoint, list(options)

    @contextmanager
    def mount(self, cache: Path) -> Iterator[Mount]:
        with mounted(self.portal, self.mountpoint, cache_dir=cache, options=self.options,
                     timeout=MOUNT_TIMEOUT) as running:
            yield Mount(self.mountpoint, running.process.pid)


class RcloneMounter:
    """``rclone mount`` of alice's ``My Files`` over WebDAV, full VFS cache, in a subprocess.

    ``read_only`` adds ``--read-only``; ``ready_name``: a file the mount must show
    before it counts as up (else being mounted is enough); ``extra``: more flags.
    """

    name = "rclone"

    def __init__(self, portal: PortalProcess, mountpoint: Path, work: Path, *, read_only: bool = True,
                 ready_name: str | None = None, extra: Sequence[str] = ()) -> None:
        self.portal, self.mountpoint = portal, mountpoint
        self.read_only, self.ready_name, self.extra = read_only, ready_name, list(extra)
        self.log_path = work / "rclone.log"
        self.config = work / "rclone.conf"
        self.rc_port = free_port()
        obscured = subprocess.run(["rclone", "obscure", "-"], input=portal.users[USER], capture_output=True,
                                  text=True, timeout=60, check=True).stdout.strip()
        self.config.touch(mode=0o600)
        self.config.write_text(
            f"[{RCLONE_REMOTE}]\ntype = webdav\nurl = {portal.url}/ServicesPortal/webdav\nvendor = other\n"
            f"user = {USER}\npass = {obscured}\n"
        )

    def command(self, cache: Path) -> list[str]:
        tls = ["--ca-cert", str(self.portal.cert)] if self.portal.cert else ["--no-check-certificate"]
        return ["rclone", "mount", f"{RCLONE_REMOTE}:My Files", str(self.mountpoint), "--config", str(self.config),
                *tls, "--cache-dir", str(cache), "--vfs-cache-mode", "full",
                *(["--read-only"] if self.read_only else []), *self.extra,
                "--log-file", str(self.log_path), "--log-level", "NOTICE",
                # the remote-control API on loopback, only to read rclone's own byte count
                "--rc", "--rc-addr", f"127.0.0.1:{self.rc_port}", "--rc-no-auth"]

    def _ready(self) -> bool:
        return is_mounted(self.mountpoint) and (self.ready_name is None or (self.mountpoint / self.ready_name).exists())

    @contextmanager
    def mount(self, cache: Path) -> Iterator[Mount]:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(self.command(cache), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + MOUNT_TIMEOUT
            while not self._ready():
                if process.poll() is not None:
                    raise RuntimeError(f"rclone mount exited with {process.returncode}:\n{self._log_tail()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"rclone mount not ready after {MOUNT_TIMEOUT}s:\n{self._log_tail()}")
                time.sleep(0.05)
            yield Mount(self.mountpoint, process.pid, self.downloaded)
        finally:
            unmount(self.mountpoint, process)

    def downloaded(self) -> int | None:
        """Bytes rclone has transferred (either way) since it started (``core/stats``)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.rc_port}/core/stats", data=b"{}",
                                         headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return int(json.load(reply)["bytes"])
        except (OSError, ValueError, KeyError):
            return None

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


Mounter = PortalfsMounter | RcloneMounter


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
