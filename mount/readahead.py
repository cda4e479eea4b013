"""The kernel's read-ahead for this mount: 128 KiB unless raised from outside.

Why.  The kernel sizes the read requests it sends a FUSE daemon by the
mount's read-ahead window, which FUSE starts at 128 KiB whatever the daemon
asks for at init.  A sequential read then costs one request per 128 KiB
through the daemon's one trio thread; with a 1 MiB window one per MiB, each
about as cheap to answer (measured figures: docs/PERFORMANCE.md).  rclone
documents the same knob for its mounts.

How.  The window is the mount's backing device's ``read_ahead_kb`` in
sysfs (``/sys/class/bdi/MAJOR:MINOR``, the numbers of the mount's
``st_dev``).  The kernel sets it while it processes the daemon's answer to
FUSE's INIT request, so it is raised only once a request has been answered
(the daemon stats its own mountpoint from a worker thread first).

Only root may write there; anyone else keeps the kernel's default, with a
line in the log saying so.  Nothing depends on it but speed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["BDI", "DEFAULT_READ_AHEAD", "set_kernel_read_ahead"]

log = logging.getLogger(__name__)

#: 1 MiB: the largest request the kernel sends a FUSE daemon (256 pages).
DEFAULT_READ_AHEAD = 1 << 20

BDI = Path("/sys/class/bdi")


def set_kernel_read_ahead(device: int, size: int) -> bool:
    """Set the read-ahead window of the mount with ``st_dev == device`` to ``size`` bytes; True if set."""
    knob = BDI / f"{os.major(device)}:{os.minor(device)}" / "read_ahead_kb"
    try:
        knob.write_text(f"{max(4, size // 1024)}\n")
    except OSError as exc:
        log.info("read-ahead left at the kernel's default (%s: %s); only root can raise it",
                 knob, exc.strerror or exc)
        return False
    log.debug("kernel read-ahead set to %d KiB (%s)", size // 1024, knob)
    return True
