"""``mount.portalfs``: the helper mount(8) runs for ``portalfs`` fstab entries, and mount(8) itself.

mount(8) runs ``/sbin/mount.TYPE SPEC DIR [-sfnv] -o OPTIONS``; it keeps the
``x-*`` options for itself (in ``/run/mount/utab``) and adds its own
defaults, so the helper really sees ``-o rw,user=…,_netdev,exec,suid,dev``.
The first test calls the helper exactly so; the others go through mount(8)
and umount(8) for real, with ``/sbin/mount.portalfs`` linked to this
virtualenv's script for the duration of the test (skipped if something else
already has that name).  Unmounting with ``umount`` lets libmount drop its
``utab`` entry, so nothing of the test stays behind.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import BIN, Cli, alive, no_mounts_left, one_line_failure
from tests.support.mount_process import is_mounted
from tests.support.portal_process import PortalProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.fuse

SBIN_HELPER = Path("/sbin/mount.portalfs")


def options(cli: Cli, portal: PortalProcess, password: str | None = None) -> str:
    secret = cli.root / "alice.password"
    secret.write_text((password or portal.users["alice"]) + "\n")
    secret.chmod(0o600)
    return f"user=alice,password_file={secret},ca_file={portal.cert},_netdev,x-systemd.automount,x-gvfs-notrash"


def umount(cli: Cli, mountpoint: Path) -> None:
    """``umount MP`` as an administrator types it; the detached daemon then ends by itself."""
    [daemon] = cli.daemons()
    result = subprocess.run(["umount", str(mountpoint)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: not alive(daemon), 30, "the daemon to end after umount")
    assert no_mounts_left(cli)


def test_helper_called_as_mount8_calls_it(cli: Cli, sample_portal: PortalProcess) -> None:
    mountpoint = cli.mountpoint()
    fstab_options = options(cli, sample_portal).replace(",x-systemd.automount,x-gvfs-notrash", "")
    mount8_options = f"rw,{fstab_options},exec,suid,dev"  # x-* kept by mount(8), its defaults added
    result = cli.run(sample_portal.url, str(mountpoint), "-n", "-v", "-o", mount8_options, program="mount.portalfs")
    assert result.returncode == 0, result.stderr
    assert (mountpoint / "Documents" / "Report.txt").read_bytes()
    umount(cli, mountpoint)


def test_helper_accepts_fstab_only_options(cli: Cli, sample_portal: PortalProcess) -> None:
    """The fstab line of docs/MOUNT.md verbatim (``x-*`` included, in case a mount(8) passes them on)."""
    mountpoint = cli.mountpoint()
    result = cli.run(sample_portal.url, str(mountpoint), "-o", options(cli, sample_portal), program="mount.portalfs")
    assert result.returncode == 0, result.stderr
    assert (mountpoint / "Documents").is_dir()
    umount(cli, mountpoint)


def test_helper_failure_is_one_line_for_mount8(cli: Cli, sample_portal: PortalProcess) -> None:
    mountpoint = cli.mountpoint()
    result = cli.run(sample_portal.url, str(mountpoint), "-o", options(cli, sample_portal, password="wrong"),
                     program="mount.portalfs")
    assert "wrong user name or password" in one_line_failure(result)
    assert no_mounts_left(cli)
    wait_for(lambda: not cli.processes(), 15, "the failed mount's processes to end")


@pytest.fixture
def sbin_helper() -> Iterator[Path]:
    """``/sbin/mount.portalfs`` → this virtualenv's helper, removed afterwards; skip if the name is taken."""
    if SBIN_HELPER.exists() or SBIN_HELPER.is_symlink():
        pytest.skip(f"{SBIN_HELPER} already exists; not replacing someone else's helper")
    SBIN_HELPER.symlink_to(BIN / "mount.portalfs")
    try:
        yield SBIN_HELPER
    finally:
        SBIN_HELPER.unlink(missing_ok=True)


def unmount_via_libmount(mountpoint: Path) -> None:
    """Teardown for mount(8)-made mounts: ``umount`` (drops the utab entry), then the generic cleanup."""
    if is_mounted(mountpoint):
        subprocess.run(["umount", str(mountpoint)], capture_output=True, timeout=30, check=False)


@pytest.mark.parametrize("how", ["mount -t portalfs", "fstab line"])
def test_mount8_runs_the_helper(cli: Cli, sample_portal: PortalProcess, sbin_helper: Path, how: str) -> None:
    mountpoint = cli.mountpoint()
    if how == "fstab line":
        fstab = cli.root / "fstab"
        fstab.write_text(f"{sample_portal.url}  {mountpoint}  portalfs  {options(cli, sample_portal)}  0 0\n")
        command = ["mount", "-T", str(fstab), str(mountpoint)]
    else:
        command = ["mount", "-t", "portalfs", "-o", options(cli, sample_portal), sample_portal.url, str(mountpoint)]
    try:
        result = subprocess.run(command, cwd=cli.work, env=cli.env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert (mountpoint / "Documents" / "Report.txt").read_bytes()
        umount(cli, mountpoint)
    finally:
        unmount_via_libmount(mountpoint)
