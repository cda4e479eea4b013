"""Run a real ``portalfs serve`` in a subprocess, and always stop it.

Tests talk to the reference portal exactly as users do: over real HTTPS on a
loopback port, with the process's own store on disk.  :func:`running_portal`
starts one, waits until its ready file appears (it is written only once
requests can be served), and on exit terminates it (SIGTERM, then SIGKILL), so
no test leaves a server behind even when it fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.waiting import wait_for

USERS = {"alice": "alice-secret", "bob": "bob-secret"}
ADMINS = {"root": "root-secret"}


@dataclass
class PortalProcess:
    url: str
    data_dir: Path
    cert: Path | None
    process: subprocess.Popen
    log_path: Path
    users: dict[str, str] = field(default_factory=lambda: dict(USERS))
    admins: dict[str, str] = field(default_factory=lambda: dict(ADMINS))

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1].rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the server abruptly (crash tests); ``running_portal`` still cleans up."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)


def free_port() -> int:
    """A loopback port nobody listens on now: to restart a portal on the same port, or to be refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def portal_command(data_dir: Path, *extra: str, ready_file: Path, port: int = 0) -> list[str]:
    command = [sys.executable, "-m", "mount.cli", "-vv", "serve", "--data", str(data_dir), "--port", str(port),
               "--test-hooks", "--ready-file", str(ready_file)]
    for name, password in USERS.items():
        command += ["--user", f"{name}:{password}"]
    for name, password in ADMINS.items():
        command += ["--admin", f"{name}:{password}"]
    return [*command, *extra]


@contextmanager
def running_portal(data_dir: Path, *extra: str, port: int = 0, timeout: float = 60.0) -> Iterator[PortalProcess]:
    """A started portal serving ``data_dir``; stopped (and reaped) on exit."""
    data_dir.mkdir(parents=True, exist_ok=True)
    ready_file = data_dir.parent / f"{data_dir.name}.ready"
    ready_file.unlink(missing_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}.log"
    log = open(log_path, "ab")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        portal_command(data_dir, *extra, ready_file=ready_file, port=port),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while not ready_file.exists():
            if process.poll() is not None:
                raise RuntimeError(f"portal exited with {process.returncode}:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"portal not ready after {timeout}s:\n{log_path.read_text()}")
            time.sleep(0.05)
        info = json.loads(ready_file.read_text())
        yield PortalProcess(info["url"], data_dir, Path(info["cert"]) if info["cert"] else None, process, log_path)
    finally:
        _stop(process)
        log.close()
        ready_file.unlink(missing_ok=True)


def tmp_files(portal: PortalProcess) -> list[str]:
    """The uploads the portal is receiving (or failed to clean up): its ``tmp/`` files."""
    return sorted(p.name for p in (portal.data_dir / "tmp").iterdir())


def blob_names(data_dir: Path) -> set[str]:
    """The content files (blobs) in a portal's store, referenced or not."""
    return {path.name for path in (data_dir / "blobs").glob("*/*") if path.is_file()}


def wait_for_no_tmp_files(portal: PortalProcess, timeout: float = 10.0) -> None:
    """Until the portal has committed or thrown away every upload it was receiving."""
    wait_for(lambda: not tmp_files(portal), timeout, "no staged uploads left on the portal",
             detail=lambda: f"leftover: {tmp_files(portal)}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def run(command: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a tool (curl, rclone, …) with a timeout so a hang fails the test instead of CI."""
    kwargs.setdefault("timeout", 120)
    kwargs.setdefault("capture_output", True)
    return subprocess.run(list(command), check=False, **kwargs)


def run_ok(*command: str | Path, cwd: Path | None = None, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run a tool (git, rsync, tar …) that must succeed, with a timeout; its output as text."""
    result = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True,
                            timeout=120, check=False, **kwargs)
    assert result.returncode == 0, f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result
