"""Fixtures of the command-line tier: ``portalfs`` run as users run it.

Every test gets a :class:`Cli` world of its own: a private ``$HOME`` (so the
daemon log, the cache and the demo's files land in the test's tmp dir), a
working directory holding decoy ``portal.py``/``cache.py``/``vfs.py`` modules
(a ``python -m`` child that put the working directory on ``sys.path`` would
import them and fail), and a tag in the environment of every process it
starts.  The daemon detaches from the test (new session, parent gone), so the
tag is how teardown finds it: whatever a test did, teardown unmounts every
mountpoint it made and kills every process still carrying its tag.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import portal_http
from tests.support.mount_process import is_mounted, unmount
from tests.support.portal_process import PortalProcess, running_portal
from tests.support.waiting import wait_for

pytestmark = pytest.mark.fuse

BIN = Path(sys.executable).parent
READY_LINE = "portalfs: mounted"
TAG_VARIABLE = "PORTALFS_CLI_TEST"
DECOY = 'raise SystemExit("portalfs imported a module from its working directory")\n'


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = None
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        reason = "no /dev/fuse or fusermount3 on this machine"
    elif not (BIN / "portalfs").exists() or not (BIN / "mount.portalfs").exists():
        reason = f"the console scripts are not installed in {BIN} (run ./dev setup)"
    if reason:
        for item in items:
            if f"{os.sep}cli{os.sep}" in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason=reason))


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie no longer does)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def proc_field(pid: int, name: str) -> bytes:
    """``/proc/PID/NAME`` (cmdline, environ …), or b"" once the process is gone."""
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return b""


def all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def one_line_failure(result: subprocess.CompletedProcess, status: int = 1) -> str:
    """Assert the contract for failures a user can fix: status 1, one ``portalfs:`` line, no traceback."""
    detail = f"status {result.returncode}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}"
    assert result.returncode == status, detail
    assert "Traceback" not in result.stderr + result.stdout, detail
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("portalfs: "), detail
    return lines[0]


@dataclass
class Cli:
    """One test's private world for running ``portalfs``; see the module docstring."""

    root: Path
    tag: str = field(default_factory=lambda: secrets.token_hex(8))
    mountpoints: list[Path] = field(default_factory=list)
    started: list[subprocess.Popen] = field(default_factory=list)
    outputs: dict[int, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.home = self.root / "home"
        self.work = self.root / "work"
        self.home.mkdir()
        self.work.mkdir()
        for decoy in ("portal.py", "cache.py", "vfs.py", "wire.py"):
            (self.work / decoy).write_text(DECOY)

    @property
    def env(self) -> dict[str, str]:
        env = {name: value for name, value in os.environ.items()
               if not name.startswith(("PORTALFS_", "XDG_", "NOTIFY_SOCKET", "PYTHON"))}
        env.update(HOME=str(self.home), XDG_STATE_HOME=str(self.home / "state"), LC_ALL="C.UTF-8")
        env[TAG_VARIABLE] = self.tag
        return env

    @property
    def log_path(self) -> Path:
        """Where a daemonised mount logs (``$XDG_STATE_HOME/portalfs/mount.log``)."""
        return self.home / "state" / "portalfs" / "mount.log"

    def mountpoint(self, name: str = "mnt") -> Path:
        """A fresh empty directory, unmounted in teardown whatever happens."""
        path = self.root / name
        path.mkdir()
        self.mountpoints.append(path)
        return path

    def run(self, *args: str, program: str = "portalfs", env: dict[str, str] | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess:
        """Run a console script to completion, as a shell would (stdin not a terminal)."""
        return subprocess.run([str(BIN / program), *args], cwd=self.work, env={**self.env, **(env or {})},
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)

    def start(self, *args: str, program: str = "portalfs", env: dict[str, str] | None = None,
              output: Path | None = None) -> subprocess.Popen:
        """Start a long-running console script (a foreground mount, the demo); output to a file."""
        output = output or self.root / f"{program}-{len(self.started)}.out"
        with open(output, "ab") as sink:
            process = subprocess.Popen([str(BIN / program), *args], cwd=self.work, env={**self.env, **(env or {})},
                                       stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
        self.started.append(process)
        self.outputs[process.pid] = output
        return process

    def output(self, process: subprocess.Popen) -> str:
        """Everything a started process wrote so far (stdout and stderr)."""
        return self.outputs[process.pid].read_text(errors="replace")

    def wait_ready(self, process: subprocess.Popen, timeout: float = 60.0) -> None:
        """Until a foreground mount says it is mounted (it says so only once the root was listed)."""

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"exited with {process.returncode}:\n{self.output(process)}")
            return READY_LINE in self.output(process)

        wait_for(ready, timeout, f"{process.args} to mount")

    def processes(self) -> list[int]:
        """Every live process started by this test, detached daemons included."""
        marker = f"{TAG_VARIABLE}={self.tag}".encode()
        return [pid for pid in all_pids() if marker in proc_field(pid, "environ").split(b"\0") and alive(pid)]

    def daemons(self) -> list[int]:
        """The live ``portalfs mount --foreground`` children that ``portalfs mount`` detached."""
        return [pid for pid in self.processes() if b"--ready-fd" in proc_field(pid, "cmdline")]

    def cleanup(self) -> None:
        for mountpoint in self.mountpoints:
            unmount(mountpoint)
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=15)
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for mountpoint in self.mountpoints:
            unmount(mountpoint)  # a process killed above may have left its mount behind
        wait_for(lambda: not self.processes(), 15, "the test's processes to end")


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    world = Cli(tmp_path)
    try:
        yield world
    finally:
        world.cleanup()


@pytest.fixture(scope="session")
def secret_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalProcess]:
    """A portal with user ``carol`` whose password is a unique token, so a leak can be searched for.

    The shared portals' passwords are on their own command lines (``--user
    alice:alice-secret``), so "the password is in no process's cmdline"
    can only be checked with an account that comes from a users file.
    """
    root = tmp_path_factory.mktemp("secret")
    password = f"pw-{secrets.token_hex(16)}"
    users = root / "users"
    users.write_text(f"carol:{password}\n")
    users.chmod(0o600)
    with running_portal(root / "data", "--users-file", str(users)) as portal:
        portal.users["carol"] = password
        with portal_http.logged_in(portal, "carol") as http:
            portal_http.put(http, portal, "My Files/hello.txt", b"hello from carol\n")
        yield portal


def no_mounts_left(cli: Cli) -> bool:
    return not any(is_mounted(path) for path in cli.mountpoints)
