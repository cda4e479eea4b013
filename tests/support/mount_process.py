"""Real kernel mounts for the integration tier, always taken down.

:func:`mounted` runs ``portalfs mount --foreground`` in a subprocess against a
running reference portal, waits until the daemon reports the mount ready, and
on exit unmounts it (``fusermount3 -u``, then the lazy ``-uz`` if something
still holds it) and stops the process — whatever the test did.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.portal_process import PortalProcess

READY_LINE = "portalfs: mounted"


@dataclass
class MountProcess:
    mountpoint: Path
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def is_mounted(path: Path) -> bool:
    target = os.fsencode(str(path))
    with open("/proc/self/mountinfo", "rb") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) > 4 and fields[4].replace(b"\\040", b" ") == target:
                return True
    return False


@contextmanager
def mounted(
    portal: PortalProcess,
    mountpoint: Path,
    *,
    user: str = "alice",
    options: Sequence[str] = (),
    cache_dir: Path | None = None,
    admin: bool = False,
    timeout: float = 60.0,
) -> Iterator[MountProcess]:
    mountpoint.mkdir(parents=True, exist_ok=True)
    log_path = mountpoint.parent / f"{mountpoint.name}.mount.log"
    password = portal.admins[user] if admin else portal.users[user]
    command = [sys.executable, "-m", "mount.cli", "-vv", "mount", portal.url, str(mountpoint), "--user", user,
               "--foreground", "--cache-dir", str(cache_dir or mountpoint.parent / f"{mountpoint.name}.cache")]
    if portal.cert:
        command += ["--ca-file", str(portal.cert)]
    if admin:
        command.append("--admin")
    for option in options:
        command += ["-o", option]
    env = {**os.environ, "PORTALFS_PASSWORD": password}
    start = log_path.stat().st_size if log_path.exists() else 0  # a remount appends to the same log
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                   cwd=Path(__file__).resolve().parents[2], start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while READY_LINE.encode() not in log_path.read_bytes()[start:]:
            if process.poll() is not None:
                raise RuntimeError(f"mount exited with {process.returncode}:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"mount not ready after {timeout}s:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield MountProcess(mountpoint, process, log_path)
    finally:
        unmount(mountpoint, process)


def unmount(mountpoint: Path, process: subprocess.Popen | None = None) -> None:
    """Unmount politely, then lazily; stop the daemon; never raise."""
    if is_mounted(mountpoint):
        subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True, timeout=30, check=False)
    if process is not None:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    if is_mounted(mountpoint):
        subprocess.run(["fusermount3", "-uz", str(mountpoint)], capture_output=True, timeout=30, check=False)
    if process is not None and process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=20)
