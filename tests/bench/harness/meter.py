"""Taking one :class:`~tests.bench.harness.results.Run`: wall time, and who spent what.

Besides the wall time of the action, a run records the CPU seconds of the
portal, of the mount daemon (or curl) and of the client, what the portal's
request log says it was asked, and what the portal read from and wrote to
its store (``/proc/PID/io``).  Every run starts with the portal and the mount
idle and waits, untimed, until they are idle again, so one run's leftovers
(the portal streaming an abandoned range, a mount finishing background work)
neither slow nor pollute the next; that tail is charged to the run that
caused it.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.bench.harness.mounts import Mount
from tests.bench.harness.results import Run
from tests.support.portal_process import PortalProcess
from tests.support.request_log import RequestLog


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of ``pid`` so far, from ``/proc`` (Linux only)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_io_bytes(pid: int, counter: str) -> int | None:
    """A counter of ``/proc/PID/io``: ``rchar`` (bytes ``read``-like calls returned) or
    ``wchar`` (bytes ``write``-like calls took).  The portal receives and sends over
    sockets with ``recv``/``send`` (not counted), so for it ``rchar`` is what it read
    from its store (blobs in 1 MiB pieces, only as fast as the client takes them, and
    SQLite pages) and ``wchar`` what it wrote there (uploaded blobs, SQLite, its log)."""
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith(f"{counter}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def process_read_bytes(pid: int) -> int | None:
    return process_io_bytes(pid, "rchar")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def delta(after: float | int | None, before: float | int | None) -> float | int | None:
    return after - before if after is not None and before is not None else None


@dataclass
class Meter:
    """Takes one :class:`Run` of an action against the portal, charging CPU to the right processes."""

    portal: PortalProcess
    log: RequestLog

    def run(self, action: Callable[[], tuple[int, int]], *, mount: Mount | None = None,
            child_reader: bool = False, child_fs: bool = False) -> Run:
        """``action`` returns (operations, payload bytes).  ``child_reader``: the reader (or
        writer) is a subprocess (ls, tar); ``child_fs``: the "filesystem" is a subprocess (curl)."""
        server_pid = self.portal.process.pid
        fs_pid = mount.pid if mount else None
        settle([server_pid, fs_pid])  # nothing left over from the previous run competes with this one
        received_before = mount.received() if mount else None
        self.log.mark()
        server_before, read_before = process_cpu_seconds(server_pid), process_read_bytes(server_pid)
        written_before = process_io_bytes(server_pid, "wchar")
        fs_before = process_cpu_seconds(fs_pid)
        self_before, children_before = time.process_time(), children_cpu_seconds()
        started = time.perf_counter()
        operations, payload = action()
        seconds = time.perf_counter() - started
        tail_started = time.perf_counter()
        settle([server_pid, fs_pid])
        tail = time.perf_counter() - tail_started
        children = children_cpu_seconds() - children_before
        own = time.process_time() - self_before
        fs_cpu = delta(process_cpu_seconds(fs_pid), fs_before)
        if child_fs:
            fs_cpu = children
        server_cpu = delta(process_cpu_seconds(server_pid), server_before)
        store_read = delta(process_read_bytes(server_pid), read_before)
        store_written = delta(process_io_bytes(server_pid, "wchar"), written_before)
        requests = self.log.since()
        received = delta(mount.received(), received_before) if mount else None
        return Run(
            seconds=seconds,
            operations=operations,
            payload_bytes=payload,
            server_cpu=server_cpu,
            fs_cpu=fs_cpu,
            reader_cpu=children if child_reader else own,
            portal_requests=len(requests),
            portal_content_bytes=sum(request.bytes for request in requests if request.is_content),
            portal_read_bytes=int(store_read) if store_read is not None else None,
            client_bytes=int(received) if received is not None else None,
            tail_seconds=tail,
            load_1min=os.getloadavg()[0],
            portal_written_bytes=int(store_written) if store_written is not None else None,
        )


def settle(pids: list[int | None], *, window: float = 0.3, timeout: float = 180.0) -> bool:
    """Wait until none of ``pids`` used CPU in two windows in a row; False on timeout.

    A client that hangs up on a long range leaves the portal streaming the rest
    into a closed socket, and the portal logs a request only after its reply is
    sent: without this, one run's leftovers would slow and be counted in the next.
    """
    deadline = time.monotonic() + timeout
    quiet = 0
    before = [process_cpu_seconds(pid) for pid in pids]
    while quiet < 2:
        if time.monotonic() > deadline:
            print(f"    (processes {pids} still busy after {timeout:.0f} s; going on)", flush=True)
            return False
        time.sleep(window)
        after = [process_cpu_seconds(pid) for pid in pids]
        busy = any(a is not None and b is not None and a - b > 0.015 for a, b in zip(after, before, strict=True))
        quiet = 0 if busy else quiet + 1
        before = after
    return True


def drop_caches() -> bool:
    """Write back and drop the kernel's page, dentry and inode caches (root only)."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True
