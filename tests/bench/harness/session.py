"""A benchmark script's life: signals, the tools it needs, a work directory always cleaned up.

SIGTERM unwinds like Ctrl-C, through every unmount; :func:`work_directory`
takes any mount still up under it down before deleting it, and leaves it in
place (saying so) if one refuses, so nothing is ever deleted through a live
mount; :func:`run_main` turns an interrupt into exit status 130.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from tests.support.mount_process import is_mounted, unmount


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, through every unmount and the clean-up of the work directory."""
    raise KeyboardInterrupt


def prepare(tools: Sequence[str]) -> None:
    """Install the signal handlers; stop with a message when a required tool is missing."""
    signal.signal(signal.SIGTERM, _terminate)
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for tool in tools:
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (./dev setup installs it)")


@contextmanager
def work_directory(prefix: str, parent: Path | None, mountpoint_names: Sequence[str], *,
                   keep: bool) -> Iterator[Path]:
    """A new temporary directory; on exit the mountpoints named are unmounted, then it is removed
    (kept with ``keep``, or when a mount would not go away)."""
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    mountpoints = [work / name for name in mountpoint_names]
    try:
        yield work
    finally:
        for mountpoint in mountpoints:  # belt and braces: never delete through a live mount
            if is_mounted(mountpoint):
                unmount(mountpoint)
        if any(is_mounted(mountpoint) for mountpoint in mountpoints):
            print(f"warning: a mount is still up; left {work} in place", file=sys.stderr)
        elif keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def run_main(main: Callable[[], int]) -> None:
    """``sys.exit(main())``, with Ctrl-C (or SIGTERM) reported and exiting 130."""
    try:
        status = main()
    except KeyboardInterrupt:
        print("interrupted; mounts taken down, portal stopped, temporary files removed", file=sys.stderr)
        status = 130
    sys.exit(status)
