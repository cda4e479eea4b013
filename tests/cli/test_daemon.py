"""``portalfs mount`` in daemon mode, as a user types it: returns once the mount answers, keeps no secrets.

The user's promise in docs/MOUNT.md: the command returns (status 0) only
once the mount works, so ``portalfs mount … && ls MP`` never races; the
daemon lives on detached from the terminal; ``portalfs unmount`` ends it; and
the password is in no command line, no daemon environment and no log, however
it was given.  Carol's password is a unique token (see ``secret_portal``), so
"nowhere" can be checked by searching every process for it.
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.conftest import BIN, Cli, all_pids, alive, proc_field
from tests.support.mount_process import is_mounted
from tests.support.portal_process import PortalProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.fuse

HELLO = b"hello from carol\n"


def ls(path: Path) -> list[str]:
    """What ``ls`` shows (``.snapshots`` is only in ``ls -a``)."""
    result = subprocess.run(["ls", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def _stat_fields(pid: int) -> list[str]:
    """``/proc/PID/stat`` after the command name: state, ppid, pgrp, session, tty_nr, …"""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def assert_detached(pid: int) -> None:
    """A daemon: its own session, no controlling terminal, not our child (its starter has exited)."""
    _state, ppid, _pgrp, session, tty_nr, *_ = _stat_fields(pid)
    assert int(session) == pid, "the daemon did not start a session of its own"
    assert int(tty_nr) == 0, "the daemon kept a controlling terminal"
    assert int(ppid) != os.getpid()


def assert_password_hidden(password: str, daemon: int, cli: Cli) -> None:
    secret = password.encode()
    for pid in all_pids():
        assert secret not in proc_field(pid, "cmdline"), f"the password is on the command line of {pid}"
    for pid in [daemon, *cli.processes()]:
        assert secret not in proc_field(pid, "environ"), f"the password is in the environment of {pid}"
    log = cli.log_path.read_bytes()
    assert b"mounted" in log, "the daemon's -vv log is not where docs/MOUNT.md says"
    assert secret not in log


def unmount_and_check_daemon_ends(cli: Cli, mountpoint: Path, daemon: int) -> None:
    result = cli.run("unmount", str(mountpoint))
    assert result.returncode == 0, result.stderr
    wait_for(lambda: not alive(daemon), 30, "the daemon to exit after `portalfs unmount`")
    assert not is_mounted(mountpoint)
    assert not cli.processes()


@pytest.mark.parametrize("source", ["password-file", "environment"])
def test_daemon_mount_is_ready_on_return_and_keeps_the_password_secret(
    cli: Cli, secret_portal: PortalProcess, source: str
) -> None:
    password = secret_portal.users["carol"]
    mountpoint = cli.mountpoint()
    args = ["-vv", "mount", secret_portal.url, str(mountpoint), "--user", "carol", "--ca-file", str(secret_portal.cert)]
    env = {}
    if source == "password-file":
        secret_file = cli.root / "carol.password"
        secret_file.write_text(password + "\n")
        secret_file.chmod(0o600)
        args += ["--password-file", str(secret_file)]
    else:
        env["PORTALFS_PASSWORD"] = password
    started = time.monotonic()
    result = cli.run(*args, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == "", "a successful mount is silent"
    # Right after the command returns, with no wait: the mount answers.
    assert ls(mountpoint) == ["hello.txt"]
    assert (mountpoint / "hello.txt").read_bytes() == HELLO
    assert time.monotonic() - started < 30

    [daemon] = cli.daemons()
    assert_detached(daemon)
    assert_password_hidden(password, daemon, cli)
    unmount_and_check_daemon_ends(cli, mountpoint, daemon)
    assert password.encode() not in cli.log_path.read_bytes()


def test_daemon_mount_prompts_for_the_password_on_a_terminal(cli: Cli, secret_portal: PortalProcess) -> None:
    """No file, no variable, a terminal: ``getpass`` asks (without echo), then the daemon starts as usual."""
    password = secret_portal.users["carol"]
    mountpoint = cli.mountpoint()
    master, slave = os.openpty()
    # setsid -c: a new session whose controlling terminal is the pty, as in a login shell.
    process = subprocess.Popen(
        ["setsid", "-c", str(BIN / "portalfs"), "-vv", "mount", secret_portal.url, str(mountpoint), "--user", "carol",
         "--ca-file", str(secret_portal.cert)],
        stdin=slave, stdout=slave, stderr=slave, cwd=cli.work, env=cli.env,
    )
    os.close(slave)
    cli.started.append(process)
    try:
        screen = _read_until(master, b"Password for carol: ", timeout=30)
        os.write(master, password.encode() + b"\n")
        assert process.wait(timeout=60) == 0, screen + _drain(master)
        screen += _drain(master)
    finally:
        os.close(master)  # the terminal hangs up: the daemon must not care
    assert password.encode() not in screen, "the password was echoed"
    [daemon] = cli.daemons()
    time.sleep(0.2)
    assert ls(mountpoint) == ["hello.txt"]
    assert_detached(daemon)
    assert_password_hidden(password, daemon, cli)
    unmount_and_check_daemon_ends(cli, mountpoint, daemon)


def _read_until(fd: int, wanted: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {wanted!r} on the terminal; it shows {seen!r}"
        readable, _, _ = select.select([fd], [], [], remaining)
        if readable:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: every holder of the terminal is gone
                chunk = b""
            assert chunk, f"the terminal closed before {wanted!r}; it shows {seen!r}"
            seen += chunk
    return seen


def _drain(fd: int) -> bytes:
    """What is left on the terminal (the writer has exited)."""
    seen = b""
    while select.select([fd], [], [], 0.2)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    return seen
