"""Failures a user can fix end ``portalfs mount`` with one clear line and status 1 — never a traceback.

Each case runs in the foreground (``-f``) and as a daemon: in daemon mode
most of these are found by the detached child, which must hand its one line
back to the waiting parent and exit, leaving neither a process nor a mount.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.cli.conftest import Cli, no_mounts_left, one_line_failure
from tests.support.portal_process import PortalProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.fuse


@dataclass(frozen=True)
class Case:
    """A wrong command line (as arguments after ``portalfs``) and what its one line must say."""

    args: list[str]
    says: str


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: connecting is refused, and nobody else can take it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def cases(portal: PortalProcess, cli: Cli, closed_port: int) -> dict[str, Case]:
    mountpoint = str(cli.mountpoint())
    ca = ["--ca-file", str(portal.cert)]
    wrong = cli.root / "wrong.password"
    wrong.write_text("not-the-password\n")
    good = ["--password-file", str(cli.root / "alice.password")]
    (cli.root / "alice.password").write_text(portal.users["alice"] + "\n")
    return {
        "wrong password": Case(["mount", portal.url, mountpoint, "--user", "alice", *ca, "--password-file", str(wrong)],
                               "wrong user name or password for 'alice'"),
        "unreachable port": Case(["mount", f"https://127.0.0.1:{closed_port}", mountpoint, "--user", "alice", *ca,
                                  *good], "connection refused"),
        "TLS mismatch": Case(["mount", portal.url, mountpoint, "--user", "alice", *good],
                             "TLS certificate verification failed"),
        "no such mountpoint": Case(["mount", portal.url, str(cli.root / "nowhere"), "--user", "alice", *ca, *good],
                                   "does not exist"),
        "bad -o option": Case(["mount", portal.url, mountpoint, "--user", "alice", *ca, *good,
                               "-o", "ro,cahce_size=1G"], "unknown mount option 'cahce_size=1G'"),
        "no user": Case(["mount", portal.url, mountpoint, *ca, *good], "--user"),
        "unreadable password file": Case(["mount", portal.url, mountpoint, "--user", "alice", *ca,
                                          "--password-file", str(cli.root / "missing")],
                                         "cannot read the password file"),
    }


CASES = ["wrong password", "unreachable port", "TLS mismatch", "no such mountpoint", "bad -o option", "no user",
         "unreadable password file"]


@pytest.mark.parametrize("mode", ["daemon", "foreground"])
@pytest.mark.parametrize("name", CASES)
def test_failure_is_one_line_and_status_1(cli: Cli, sample_portal: PortalProcess, closed_port: int,
                                          name: str, mode: str) -> None:
    case = cases(sample_portal, cli, closed_port)[name]
    result = cli.run(*case.args, *(["--foreground"] if mode == "foreground" else []))
    line = one_line_failure(result)
    assert case.says in line
    wait_for(lambda: not cli.processes(), 15, "every process of the failed mount to end")
    assert no_mounts_left(cli)


@pytest.mark.parametrize("mode", ["daemon", "foreground"])
def test_mounting_on_a_mounted_directory_is_refused(cli: Cli, sample_portal: PortalProcess, mode: str) -> None:
    mountpoint = cli.mountpoint()
    common = ["mount", sample_portal.url, str(mountpoint), "--user", "alice", "--ca-file", str(sample_portal.cert)]
    env = {"PORTALFS_PASSWORD": sample_portal.users["alice"]}
    first = cli.run(*common, env=env)
    assert first.returncode == 0, first.stderr
    [daemon] = cli.daemons()
    second = cli.run(*common, *(["--foreground"] if mode == "foreground" else []), env=env)
    assert "already a mount point" in one_line_failure(second)
    assert cli.daemons() == [daemon], "the refused mount left a process behind"
    assert (mountpoint / "Documents" / "Report.txt").read_bytes(), "the first mount was disturbed"
    assert cli.run("unmount", str(mountpoint)).returncode == 0
    wait_for(lambda: not cli.processes(), 30, "the daemon to end")
    assert no_mounts_left(cli)


def test_unmounting_what_is_not_mounted_is_one_line(cli: Cli) -> None:
    mountpoint = cli.mountpoint()
    assert str(mountpoint) in one_line_failure(cli.run("unmount", str(mountpoint)))
