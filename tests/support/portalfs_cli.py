"""Asking a running mount what it is doing: the ``portalfs`` command, as users run it, and the
control socket for tests that only pace themselves on the daemon's answer.

What the *portal* holds is never taken from here (that is ``PortalView``'s job); the daemon's
word is for what only it knows (pending uploads, conflicts) and for waiting until it is idle.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Protocol

from mount import control
from mount.status_text import waiting_uploads
from tests.support.waiting import wait_for

PORTALFS = Path(sys.executable).parent / "portalfs"  # the console script, as users run it
HOLD_BACK = "upload_delay=30"  # nothing is uploaded on a timer while a test looks


def content(seed: int, size: int) -> bytes:
    """``size`` reproducible random bytes."""
    return random.Random(seed).randbytes(size)


def portalfs(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PORTALFS), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          check=False)


def succeeds(*args: str | Path, timeout: float = 120) -> str:
    """``portalfs ARGS``'s output; the test fails if the command does."""
    result = portalfs(*args, timeout=timeout)
    assert result.returncode == 0, f"portalfs {' '.join(map(str, args))}: {result.returncode}\n{result.stderr}"
    return result.stdout


def status_json(mountpoint: Path) -> dict:
    """``portalfs status MOUNTPOINT --json``: the daemon's snapshot."""
    return json.loads(succeeds("status", mountpoint, "--json"))


def pending_uploads(mountpoint: Path) -> dict[str, int]:
    """path → size of every staged file ``portalfs status --json`` reports."""
    return {entry["path"]: entry["size"] for entry in status_json(mountpoint)["uploads"]["pending"]}


class Mount(Protocol):
    mountpoint: Path

    def log(self) -> str: ...


def wait_until_quiet(mount: Mount, timeout: float = 30.0) -> None:
    """Until the daemon has no upload waiting or running (held and excluded files stay, as they should).

    Pacing only, so that a late upload cannot slip past a count or a later step changes files
    already on the portal; asked over the control socket, not with a process per poll."""
    last: dict = {}

    def quiet() -> bool:
        status = control.ask(mount.mountpoint, {"op": "status"})
        last.update(status["uploads"])
        return not waiting_uploads(status) and not status["uploads"]["in_flight"]

    wait_for(quiet, timeout, "the mount's uploads to finish",
             detail=lambda: f"uploads: {last}\n{mount.log()[-4000:]}")
