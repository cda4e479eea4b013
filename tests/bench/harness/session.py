"""A benchmark script's life: signals, the tools it needs, a work directory always cleaned up,
the options every mount benchmark takes, and the rounds it runs.

SIGTERM unwinds like Ctrl-C, through every unmount; :func:`work_directory`
takes any mount still up under it down before deleting it, and leaves it in
place (saying so) if one refuses, so nothing is ever deleted through a live
mount; :func:`run_main` turns an interrupt into exit status 130.
:class:`MountBench` is what a mount benchmark's phases share: fresh cache
directories, the mounts in turn-about order, and the interleaved rounds that
stop at the first failure but keep what was measured before it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from tests.bench.harness.meter import Meter
from tests.bench.harness.mounts import Mounter
from tests.bench.harness.results import MiB, Workload
from tests.support.mount_process import is_mounted, unmount
from tests.support.portal_process import PortalProcess


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


def write_random_file(path: Path, size: int) -> str:
    """``size`` random bytes in a new file at ``path``, 8 MiB at a time (no large buffer in memory);
    their SHA-256."""
    digest = hashlib.sha256()
    with open(path, "xb") as out:
        remaining = size
        while remaining:
            piece = os.urandom(min(8 * MiB, remaining))
            out.write(piece)
            digest.update(piece)
            remaining -= len(piece)
    return digest.hexdigest()


# ------------------------------------------------------------ mount benchmarks


def add_work_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of every mount benchmark about where it works and what it leaves behind."""
    parser.add_argument("--tmp", type=Path, default=None, help="where to put the portal, mounts and caches")
    parser.add_argument("--no-save", action="store_true", help="write neither the JSON nor the chart")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) after unmounting")


def parse_phases(parser: argparse.ArgumentParser, text: str, known: Sequence[str]) -> list[str]:
    """The phases named in a comma-separated ``--phases``; an unknown one is a usage error."""
    phases = [phase.strip() for phase in text.split(",") if phase.strip()]
    unknown = set(phases) - set(known)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    return phases


@dataclass
class MountBench:
    """What the phases of a mount benchmark work with; a subclass adds its inputs and one method a phase.

    ``args`` needs ``size_mib``, ``repeats`` and ``phases``."""

    args: argparse.Namespace
    work: Path
    portal: PortalProcess
    meter: Meter
    mounters: list[Mounter]
    workloads: dict[str, Workload]
    caches_made: int = field(default=0, init=False)

    @property
    def size(self) -> int:
        return self.args.size_mib * MiB

    def fresh_cache(self, mounter: Mounter) -> Path:
        self.caches_made += 1
        return self.work / f"cache-{mounter.name}-{self.caches_made}"

    def order(self, round_number: int) -> list[Mounter]:
        """The mounts in turn-about order, so neither always runs right after the other."""
        return self.mounters[round_number % 2:] + self.mounters[:round_number % 2]

    def run_rounds(self, phases: dict[str, Callable[[int], None]],
                   skip: Callable[[str, int], bool] = lambda phase, round_number: False) -> str | None:
        """``args.repeats`` interleaved rounds of the chosen phases (but those ``skip`` names for a round);
        the failure that stopped them early, if any (what was measured before it stays in the workloads)."""
        try:
            for round_number in range(self.args.repeats):
                for phase in self.args.phases:
                    if skip(phase, round_number):
                        continue
                    print(f"  round {round_number + 1}/{self.args.repeats}: {phase}", flush=True)
                    phases[phase](round_number)
        except Exception as exc:  # report what was measured before it; the caller exits non-zero
            failure = f"{type(exc).__name__}: {str(exc)[-3000:]}"
            print(f"\nstopped early by {failure}\n", file=sys.stderr, flush=True)
            return failure
        return None
