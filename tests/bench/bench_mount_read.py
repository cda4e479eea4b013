"""How fast do programs read through a portalfs mount, next to rclone, curl and the local disk?

A mount is only worth using if reading through it is close to what the
network and the machine allow, and clearly better than the stock alternative.
This benchmark builds one reference portal (``portalfs serve`` on loopback,
HTTPS) whose store holds a large file of random bytes (1 GiB by default) and a
tree of small files (100 folders of 100 files by default), all written into
the store before the portal starts, and then measures, in interleaved rounds
and against that same portal:

1. **cold sequential read** of the large file (a 1 MiB ``readinto`` loop to
   nowhere) through a fresh portalfs mount with an empty cache directory,
   through a fresh ``rclone mount`` (WebDAV backend on
   ``/ServicesPortal/webdav``, ``--vfs-cache-mode full``, empty cache
   directory), with ``curl`` (one plain GET: the network ceiling) and from the
   page-cached blob file in the portal's store (the machine's ceiling);
2. **warm re-read** of the same file in the same mounts (the kernel page cache,
   which portalfs keeps across opens of an unchanged file), compared with a
   page-cached local read (``*-warm`` is the second read, the one the target
   is about; ``*-warm3`` a third, to tell pages the cold read left out of the
   page cache from the cost of the page cache itself); and, after ``echo 3 > /proc/sys/vm/drop_caches``,
   a read through a *new* mount on the cache directory the cold read filled
   (only the persistent disk tier can serve it: the memory tier died with
   the old process), compared with a local read after the same drop;
3. **random 4 KiB reads**: ``--random-reads`` ``pread`` calls at random
   4 KiB-aligned offsets of the cold large file, one at a time, the same
   offsets for both mounts: IOPS, and how many bytes each mount made the
   portal send for them (a mount that fetches megabytes per 4 KiB read wastes
   the network);
4. ``ls -lR`` of the small-file tree through a fresh mount (cold);
5. **reading every file** of that tree through a fresh mount (cold), with the
   same small Python reader for both mounts: ``os.walk`` feeding a pool of
   ``--threads`` threads, each reading a file to its end.

Each cold run gets a new mount and a new, empty cache directory, so nothing
but the portal's own page cache survives from one run to the next (the blob is
re-read locally before every round so that curl and both mounts find the
portal's side equally warm).  Per run we record wall time, the CPU seconds of
the portal, of the mount daemon (or curl) and of the reader, and what the
portal served: requests and content bytes from its ``-vv`` request log
(:class:`tests.support.request_log.RequestLog`), what the portal read from its
store (``rchar`` in ``/proc/PID/io``) and, for rclone, what it says it
downloaded (its ``rc`` API), because the log records what a reply promised and
rclone hangs up on open-ended ranges.  Every run starts with the portal and the
mount idle and waits, untimed, until they are idle again, so one run's
leftovers (the portal streaming an abandoned range) neither slow nor pollute
the next; that tail is charged to the run that caused it.

The statistic is the best run (interference only ever slows a run down), with
the median next to it; ratios are "portalfs is x times as fast as the peer",
from best runs.  The targets of the issue are *reported* as met or not, never
asserted: cold sequential at least 0.9x curl and 1.5x rclone, warm re-read
at least 0.8x a page-cached local read, the 10,000-file read at least 50x
faster than rclone.  Other work on the machine slows wall clocks, so the load
average is recorded and CPU seconds are given alongside.

Run it with ``./dev bench mount_read`` (``-- --help`` for the knobs); it needs
root for FUSE and ``drop_caches``, ``rclone`` and ``curl``, and about three
times the file size of free space.  Results go to
``tests/bench/results/mount_read-<time>.json`` with a bar chart of the ratios
next to it (``.png``; needs matplotlib from ``requirements-bench.txt``, which
``./dev bench`` installs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from portal.store import Store
from tests.support.mount_process import is_mounted, mounted, unmount
from tests.support.portal_process import USERS, PortalProcess, running_portal
from tests.support.request_log import RequestLog

KiB = 1 << 10
MiB = 1 << 20
MB = 1_000_000
USER = "alice"
BIG_NAME = "big.bin"
BIG_WEBDAV_PATH = f"/ServicesPortal/webdav/My%20Files/{BIG_NAME}"
TREE_NAME = "Tree"
READ_BUFFER = 1 * MiB
PAGE = 4 * KiB
VERIFY_SAMPLES = 64
RESULTS_DIR = Path(__file__).resolve().with_name("results")
REPO_ROOT = Path(__file__).resolve().parents[2]
RCLONE_REMOTE = "portal"
MOUNT_TIMEOUT = 60.0
TARGETS_TEXT = {
    "cold-vs-curl": "cold sequential >= 0.9x curl",
    "cold-vs-rclone": "cold sequential >= 1.5x rclone",
    "warm-vs-local": "warm re-read >= 0.8x page-cached local read",
    "tree-vs-rclone": "cold read of the small-file tree >= 50x faster than rclone",
}


# ------------------------------------------------------------------ results


@dataclass
class Run:
    seconds: float
    #: what the action counted: bytes for sequential reads, preads, ls entries, files
    operations: int
    payload_bytes: int
    #: CPU seconds of the portal process (None when /proc could not tell)
    server_cpu: float | None
    #: CPU seconds of the mount daemon, or of curl (None for a local read)
    fs_cpu: float | None
    #: CPU seconds of the reading side: this process (all threads) or a child like ``ls``
    reader_cpu: float
    portal_requests: int
    #: content bytes of WebDAV GETs, as the portal's request log records them
    portal_content_bytes: int
    #: bytes the portal read from its store during the run and its tail (/proc/PID/io rchar):
    #: unlike the log it counts replies the portal never finished logging, and ranges it went
    #: on reading for a client that had already hung up
    portal_read_bytes: int | None
    #: content bytes the mount itself says it downloaded (rclone's rc core/stats; None for portalfs,
    #: which has no outside counter: there the log and the store reads agree)
    client_bytes: int | None
    #: untimed seconds after the action until the portal and the mount were idle again
    #: (their CPU and the counts above include that tail: work this run caused)
    tail_seconds: float
    load_1min: float


@dataclass
class Row:
    name: str
    description: str
    runs: list[Run] = field(default_factory=list)

    def best(self) -> Run:
        return min(self.runs, key=lambda run: run.seconds)

    def median_seconds(self) -> float:
        return statistics.median(run.seconds for run in self.runs)

    def median_of(self, pick: Callable[[Run], float | int | None]) -> float | None:
        values = [value for run in self.runs if (value := pick(run)) is not None]
        return statistics.median(values) if values else None

    def as_json(self, rate: Callable[[Run], float]) -> dict:
        best = self.best()
        return {
            "name": self.name,
            "description": self.description,
            "runs": [vars(run) for run in self.runs],
            "best_seconds": best.seconds,
            "median_seconds": self.median_seconds(),
            "best_rate": rate(best),
            "median_rate": statistics.median(rate(run) for run in self.runs),
        }


@dataclass
class Comparison:
    """``subject`` is ``ratio`` times as fast as ``peer`` (from best runs; same work in both)."""

    subject: str
    peer: str
    target: float | None = None
    target_key: str | None = None


@dataclass
class Workload:
    key: str
    title: str
    unit: str
    #: CPU columns per 10^9 payload bytes (large transfers) or in plain seconds
    cpu_per_gb: bool
    rows: dict[str, Row] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)

    def row(self, name: str, description: str) -> Row:
        return self.rows.setdefault(name, Row(name, description))

    def rate(self, run: Run) -> float:
        if self.unit == "MB/s":
            return run.payload_bytes / run.seconds / MB
        return run.operations / run.seconds

    def ratio(self, comparison: Comparison) -> float | None:
        subject, peer = self.rows.get(comparison.subject), self.rows.get(comparison.peer)
        if not subject or not peer or not subject.runs or not peer.runs:
            return None
        return peer.best().seconds / subject.best().seconds


# ------------------------------------------------------------ measuring aids


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of ``pid`` so far, from ``/proc`` (Linux only)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_read_bytes(pid: int) -> int | None:
    """``rchar`` of ``pid``: bytes its ``read``-like calls returned.  The portal receives
    over sockets with ``recv`` (not counted), so for it this is what it read from its
    store: blobs (in 1 MiB pieces, only as fast as the client takes them) and SQLite pages."""
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


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
        """``action`` returns (operations, payload bytes).  ``child_reader``: the reader is a
        subprocess (ls); ``child_fs``: the "filesystem" is a subprocess (curl)."""
        server_pid = self.portal.process.pid
        fs_pid = mount.pid if mount else None
        settle([server_pid, fs_pid])  # nothing left over from the previous run competes with this one
        received_before = mount.received() if mount else None
        self.log.mark()
        server_before, read_before = process_cpu_seconds(server_pid), process_read_bytes(server_pid)
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


# ------------------------------------------------------------------ the store


def tree_content(folder: int, index: int, size: int) -> bytes:
    """The deterministic content of ``Tree/dNNN/fNNNN.txt`` (checked after reading)."""
    line = f"{TREE_NAME}/d{folder:03d}/f{index:04d}.txt\n".encode()
    return (line * (size // len(line) + 1))[:size]


def tree_path(root: Path, folder: int, index: int) -> Path:
    return root / TREE_NAME / f"d{folder:03d}" / f"f{index:04d}.txt"


def build_store(data: Path, size: int, folders: int, files: int, file_size: int) -> Path:
    """alice's ``My Files`` with ``big.bin`` (random) and the tree; returns the big file's blob path."""
    store = Store(data)
    try:
        alice = store.set_user(USER, USERS[USER])
        root = store.item(store.cloud_folders(alice.id)[0].root_item_id)
        blob_path = write_random_blob(store, size)
        store.put_file(root, BIG_NAME, blob_path.name, size)
        store.db.execute("BEGIN IMMEDIATE")  # one transaction for the whole tree: seconds, not minutes
        tree = store.make_folder(root, TREE_NAME)
        for folder in range(folders):
            parent = store.make_folder(tree, f"d{folder:03d}")
            for index in range(files):
                blob = store.blobs.write_small(tree_content(folder, index, file_size), durable=False)
                store.put_file(parent, f"f{index:04d}.txt", blob, file_size)
        store.db.execute("COMMIT")
    finally:
        store.close()
    os.sync()
    return blob_path


def write_random_blob(store: Store, size: int) -> Path:
    """A blob of ``size`` random bytes written in place (no 1 GiB buffer in memory)."""
    name = uuid.uuid4().hex
    path = store.blobs.path(name)
    path.parent.mkdir(exist_ok=True)
    with open(path, "xb") as out:
        remaining = size
        while remaining:
            piece = os.urandom(min(8 * MiB, remaining))
            out.write(piece)
            remaining -= len(piece)
    return path


# -------------------------------------------------------------------- mounts


def no_count() -> int | None:
    return None


@dataclass
class Mount:
    root: Path
    pid: int
    #: the mount's own running total of downloaded bytes, when it has one
    received: Callable[[], int | None] = no_count


class PortalfsMounter:
    name = "portalfs"

    def __init__(self, portal: PortalProcess, mountpoint: Path) -> None:
        self.portal, self.mountpoint = portal, mountpoint

    @contextmanager
    def mount(self, cache: Path) -> Iterator[Mount]:
        with mounted(self.portal, self.mountpoint, cache_dir=cache, timeout=MOUNT_TIMEOUT) as running:
            yield Mount(self.mountpoint, running.process.pid)


class RcloneMounter:
    """``rclone mount`` of alice's ``My Files`` over WebDAV, full VFS cache, in a subprocess."""

    name = "rclone"

    def __init__(self, portal: PortalProcess, mountpoint: Path, work: Path) -> None:
        self.portal, self.mountpoint = portal, mountpoint
        self.log_path = work / "rclone.log"
        self.config = work / "rclone.conf"
        self.rc_port = free_port()
        obscured = subprocess.run(["rclone", "obscure", "-"], input=portal.users[USER], capture_output=True,
                                  text=True, timeout=60, check=True).stdout.strip()
        self.config.touch(mode=0o600)
        self.config.write_text(
            f"[{RCLONE_REMOTE}]\ntype = webdav\nurl = {portal.url}/ServicesPortal/webdav\nvendor = other\n"
            f"user = {USER}\npass = {obscured}\n"
        )

    def command(self, cache: Path) -> list[str]:
        tls = ["--ca-cert", str(self.portal.cert)] if self.portal.cert else ["--no-check-certificate"]
        return ["rclone", "mount", f"{RCLONE_REMOTE}:My Files", str(self.mountpoint), "--config", str(self.config),
                *tls, "--cache-dir", str(cache), "--vfs-cache-mode", "full", "--read-only",
                "--log-file", str(self.log_path), "--log-level", "NOTICE",
                # the remote-control API on loopback, only to read rclone's own byte count
                "--rc", "--rc-addr", f"127.0.0.1:{self.rc_port}", "--rc-no-auth"]

    @contextmanager
    def mount(self, cache: Path) -> Iterator[Mount]:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(self.command(cache), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + MOUNT_TIMEOUT
            while not (is_mounted(self.mountpoint) and (self.mountpoint / BIG_NAME).exists()):
                if process.poll() is not None:
                    raise RuntimeError(f"rclone mount exited with {process.returncode}:\n{self._log_tail()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"rclone mount not ready after {MOUNT_TIMEOUT}s:\n{self._log_tail()}")
                time.sleep(0.05)
            yield Mount(self.mountpoint, process.pid, self.downloaded)
        finally:
            unmount(self.mountpoint, process)

    def downloaded(self) -> int | None:
        """Bytes rclone has transferred since it started (``core/stats``)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.rc_port}/core/stats", data=b"{}",
                                         headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return int(json.load(reply)["bytes"])
        except (OSError, ValueError, KeyError):
            return None

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


Mounter = PortalfsMounter | RcloneMounter


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ------------------------------------------------------------------- readers


def read_sequential(path: Path) -> tuple[int, int]:
    moved = 0
    buffer = bytearray(READ_BUFFER)
    with open(path, "rb", buffering=0) as source:
        while count := source.readinto(buffer):
            moved += count
    return moved, moved


def curl_get(portal: PortalProcess, path: str) -> tuple[int, int]:
    result = subprocess.run(
        ["curl", "-s", "-S", "-f", "-o", "/dev/null", "-w", "%{size_download}", "-u", f"{USER}:{portal.users[USER]}",
         *(["--cacert", str(portal.cert)] if portal.cert else ["-k"]), portal.url + path],
        capture_output=True, text=True, timeout=900, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"curl failed ({result.returncode}): {result.stderr.strip()}")
    moved = int(result.stdout.strip())
    return moved, moved


def read_random(path: Path, offsets: list[int], into: list[bytes]) -> tuple[int, int]:
    """One ``pread`` of a page at each offset, in order; the pieces go to ``into`` for checking."""
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset in offsets:
            into.append(os.pread(fd, PAGE, offset))
    finally:
        os.close(fd)
    return len(offsets), sum(len(piece) for piece in into)


def list_tree(root: Path) -> tuple[int, int]:
    """``ls -lR``; counts the regular files it listed."""
    result = subprocess.run(["ls", "-lR", str(root)], capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ls -lR failed ({result.returncode}): {result.stderr[-2000:]}")
    return sum(1 for line in result.stdout.splitlines() if line.startswith("-")), 0


def read_tree(root: Path, threads: int) -> tuple[int, int]:
    """Every file under ``root``, read to its end by ``threads`` threads fed by ``os.walk``."""

    def read_one(path: str) -> int:
        moved = 0
        with open(path, "rb", buffering=0) as source:
            while chunk := source.read(256 * KiB):
                moved += len(chunk)
        return moved

    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending = []
        for folder, _, names in os.walk(root):
            pending.extend(pool.submit(read_one, os.path.join(folder, name)) for name in names)
        return len(pending), sum(future.result() for future in pending)


# ------------------------------------------------------------------ checking


def check_pieces(mounted_file: Path, reference: Path, offsets: list[int], what: str) -> None:
    """The mount returns the reference's bytes at ``offsets`` (untimed)."""
    with open(mounted_file, "rb", buffering=0) as got, open(reference, "rb", buffering=0) as want:
        for offset in offsets:
            if os.pread(got.fileno(), PAGE, offset) != os.pread(want.fileno(), PAGE, offset):
                raise RuntimeError(f"{what}: bytes at {offset} differ from the portal's blob")


def check_random(pieces: list[bytes], reference: Path, offsets: list[int], what: str) -> None:
    with open(reference, "rb", buffering=0) as want:
        for piece, offset in zip(pieces, offsets, strict=True):
            if piece != os.pread(want.fileno(), PAGE, offset):
                raise RuntimeError(f"{what}: pread at {offset} differs from the portal's blob")


def check_tree_sample(root: Path, folders: int, files: int, file_size: int, rng: random.Random, what: str) -> None:
    for _ in range(20):
        folder, index = rng.randrange(folders), rng.randrange(files)
        if tree_path(root, folder, index).read_bytes() != tree_content(folder, index, file_size):
            raise RuntimeError(f"{what}: {tree_path(root, folder, index)} has the wrong content")


def expect(run: Run, operations: int, what: str) -> Run:
    if run.operations != operations:
        raise RuntimeError(f"{what}: counted {run.operations}, expected {operations}")
    return run


# --------------------------------------------------------------------- phases


@dataclass
class Bench:
    args: argparse.Namespace
    work: Path
    portal: PortalProcess
    blob: Path
    meter: Meter
    mounters: list[Mounter]
    workloads: dict[str, Workload]
    can_drop: bool
    caches_made: int = 0

    @property
    def size(self) -> int:
        return self.args.size_mib * MiB

    def fresh_cache(self, mounter: Mounter) -> Path:
        self.caches_made += 1
        return self.work / f"cache-{mounter.name}-{self.caches_made}"

    def order(self, round_number: int) -> list[Mounter]:
        """The mounts in turn-about order, so neither always runs right after the other."""
        return self.mounters[round_number % 2:] + self.mounters[:round_number % 2]

    def say(self, workload: str, row: str, run: Run) -> None:
        w = self.workloads[workload]
        client = "" if run.client_bytes is None else f", rclone got {run.client_bytes / MB:.1f} MB"
        print(f"    {row:<16} {run.seconds:8.2f} s {w.rate(run):10.1f} {w.unit:<9} portal {run.portal_requests:6d} req "
              f"{run.portal_content_bytes / MB:9.1f} MB{client}", flush=True)

    def record(self, workload: str, row: str, description: str, run: Run) -> None:
        self.workloads[workload].row(row, description).runs.append(run)
        self.say(workload, row, run)

    # -- workloads 1 and 2

    def sequential_round(self, round_number: int) -> None:
        size = self.size
        read_sequential(self.blob)  # untimed: the portal's blob in page cache, for every row alike
        self.record("sequential", "local-page", "Python readinto loop over the page-cached blob in the portal's store",
                    expect(self.meter.run(lambda: read_sequential(self.blob)), size, "local read"))
        self.record("sequential", "curl", "curl, one HTTPS GET of the whole file to /dev/null",
                    expect(self.meter.run(lambda: curl_get(self.portal, BIG_WEBDAV_PATH),
                                          child_fs=True), size, "curl"))
        caches: dict[str, Path] = {}
        rng = random.Random(round_number)
        samples = sorted(rng.randrange(size // PAGE) * PAGE for _ in range(VERIFY_SAMPLES))
        for mounter in self.order(round_number):
            caches[mounter.name] = cache = self.fresh_cache(mounter)
            with mounter.mount(cache) as mount:
                target = mount.root / BIG_NAME
                cold = self.meter.run(lambda: read_sequential(target), mount=mount)
                self.record("sequential", f"{mounter.name}-cold", f"{mounter.name} mount, empty cache, first read",
                            expect(cold, size, f"{mounter.name} cold read"))
                warm = self.meter.run(lambda: read_sequential(target), mount=mount)
                self.record("warm", f"{mounter.name}-warm", f"{mounter.name} mount, second read in the same mount",
                            expect(warm, size, f"{mounter.name} warm read"))
                again = self.meter.run(lambda: read_sequential(target), mount=mount)
                self.record("warm", f"{mounter.name}-warm3", f"{mounter.name} mount, third read in the same mount",
                            expect(again, size, f"{mounter.name} third read"))
                check_pieces(target, self.blob, samples, f"{mounter.name} mount")
        self.workloads["warm"].row("local-page", "page-cached local read (the same runs as in the sequential table)")\
            .runs.append(self.workloads["sequential"].rows["local-page"].runs[-1])
        if self.can_drop:
            for mounter in self.order(round_number):
                drop_caches()
                with mounter.mount(caches[mounter.name]) as mount:
                    target = mount.root / BIG_NAME
                    disk = self.meter.run(lambda: read_sequential(target), mount=mount)
                    self.record("warm", f"{mounter.name}-disk",
                                f"{mounter.name}: new mount on the filled cache dir, after drop_caches",
                                expect(disk, size, f"{mounter.name} disk-tier read"))
            drop_caches()
            self.record("warm", "local-disk", "Python readinto loop over the blob file after drop_caches",
                        expect(self.meter.run(lambda: read_sequential(self.blob)), size, "local read after drop"))
        for cache in caches.values():
            shutil.rmtree(cache, ignore_errors=True)

    # -- workload 3

    def random_round(self, round_number: int) -> None:
        rng = random.Random(1000 + round_number)
        offsets = [rng.randrange(self.size // PAGE) * PAGE for _ in range(self.args.random_reads)]
        read_sequential(self.blob)
        for mounter in self.order(round_number):
            cache = self.fresh_cache(mounter)
            with mounter.mount(cache) as mount:
                target = mount.root / BIG_NAME
                pieces: list[bytes] = []
                run = self.meter.run(lambda: read_random(target, offsets, pieces), mount=mount)
                self.record("random", mounter.name, f"{mounter.name} mount, empty cache, one pread at a time",
                            expect(run, len(offsets), f"{mounter.name} random reads"))
                check_random(pieces, self.blob, offsets, f"{mounter.name} random reads")
            shutil.rmtree(cache, ignore_errors=True)

    # -- workloads 4 and 5

    def tree_round(self, round_number: int) -> None:
        total = self.args.tree_folders * self.args.tree_files
        for mounter in self.order(round_number):
            cache = self.fresh_cache(mounter)
            with mounter.mount(cache) as mount:
                run = self.meter.run(lambda: list_tree(mount.root / TREE_NAME), mount=mount, child_reader=True)
                self.record("ls", mounter.name, f"{mounter.name} mount, fresh: ls -lR of the tree",
                            expect(run, total, f"{mounter.name} ls -lR"))
            shutil.rmtree(cache, ignore_errors=True)
            cache = self.fresh_cache(mounter)
            with mounter.mount(cache) as mount:
                run = self.meter.run(lambda: read_tree(mount.root / TREE_NAME, self.args.threads), mount=mount)
                self.record("tree", mounter.name,
                            f"{mounter.name} mount, fresh: os.walk + {self.args.threads} reader threads",
                            expect(run, total, f"{mounter.name} tree read"))
                check_tree_sample(mount.root, self.args.tree_folders, self.args.tree_files, self.args.tree_file_bytes,
                                  random.Random(round_number), f"{mounter.name} tree")
            shutil.rmtree(cache, ignore_errors=True)


def make_workloads(args: argparse.Namespace, can_drop: bool) -> dict[str, Workload]:
    size = f"{args.size_mib} MiB"
    tree = f"{args.tree_folders} x {args.tree_files} files of {args.tree_file_bytes} bytes"
    sequential = Workload("sequential", f"1. cold sequential read of a {size} file", "MB/s", True, comparisons=[
        Comparison("portalfs-cold", "curl", 0.9, "cold-vs-curl"),
        Comparison("portalfs-cold", "rclone-cold", 1.5, "cold-vs-rclone"),
        Comparison("portalfs-cold", "local-page"),
    ])
    warm = Workload("warm", f"2. warm re-read of the {size} file", "MB/s", True, comparisons=[
        Comparison("portalfs-warm", "local-page", 0.8, "warm-vs-local"),
        Comparison("portalfs-warm", "rclone-warm"),
        Comparison("portalfs-warm3", "local-page"),
    ])
    if can_drop:
        warm.comparisons += [Comparison("portalfs-disk", "local-disk"), Comparison("portalfs-disk", "rclone-disk")]
    random_reads = Workload("random", f"3. {args.random_reads} random 4 KiB preads of the cold {size} file", "IOPS",
                            False, comparisons=[Comparison("portalfs", "rclone")])
    ls = Workload("ls", f"4. ls -lR of a cold tree of {tree}", "files/s", False,
                  comparisons=[Comparison("portalfs", "rclone")])
    tree_read = Workload("tree", f"5. reading every file of a cold tree of {tree}, {args.threads} threads", "files/s",
                         False, comparisons=[Comparison("portalfs", "rclone", 50.0, "tree-vs-rclone")])
    chosen = {"sequential": [sequential, warm], "random": [random_reads], "tree": [ls, tree_read]}
    return {w.key: w for phase in args.phases for w in chosen[phase]}


# -------------------------------------------------------------------- report


def format_cpu(value: float | None, run_bytes: int, per_gb: bool) -> str:
    if value is None:
        return "-"
    return f"{value / (run_bytes / 1e9):.2f}" if per_gb and run_bytes else f"{value:.2f}"


def table(workload: Workload) -> str:
    cpu = "s/GB" if workload.cpu_per_gb else "s"
    runs = max(len(row.runs) for row in workload.rows.values())
    lines = [f"{workload.title} (best of {runs})",
             f"{'row':<14} {'best s':>8} {'median s':>9} {'best ' + workload.unit:>13} {'median':>9} "
             f"{'req':>6} {'log MB':>8} {'store MB':>8} {'client MB':>9} "
             f"{'srv ' + cpu:>9} {'fs ' + cpu:>8} {'rd ' + cpu:>8}"]
    for row in workload.rows.values():
        best = row.best()
        median_rate = statistics.median(workload.rate(run) for run in row.runs)
        requests = row.median_of(lambda run: run.portal_requests) or 0
        content = row.median_of(lambda run: run.portal_content_bytes) or 0
        store_read = row.median_of(lambda run: run.portal_read_bytes)
        received = row.median_of(lambda run: run.client_bytes)
        payload = best.payload_bytes
        lines.append(
            f"{row.name:<14} {best.seconds:>8.2f} {row.median_seconds():>9.2f} {workload.rate(best):>13.1f} "
            f"{median_rate:>9.1f} {requests:>6.0f} {content / MB:>8.1f} "
            f"{'-' if store_read is None else f'{store_read / MB:.1f}':>8} "
            f"{'-' if received is None else f'{received / MB:.1f}':>9} "
            f"{format_cpu(row.median_of(lambda run: run.server_cpu), payload, workload.cpu_per_gb):>9} "
            f"{format_cpu(row.median_of(lambda run: run.fs_cpu), payload, workload.cpu_per_gb):>8} "
            f"{format_cpu(row.median_of(lambda run: run.reader_cpu), payload, workload.cpu_per_gb):>8}"
        )
    for comparison in workload.comparisons:
        ratio = workload.ratio(comparison)
        if ratio is None:
            continue
        verdict = ""
        if comparison.target is not None:
            verdict = f"   target >= {comparison.target:g}x: {'met' if ratio >= comparison.target else 'NOT MET'}"
        lines.append(f"  {comparison.subject} / {comparison.peer}: {ratio:.2f}x{verdict}")
    return "\n".join(lines)


def draw_chart(workloads: list[Workload], out: Path, subtitle: str) -> bool:
    """Bar charts of "portalfs is x times as fast as ..." per workload (log scale: ratios
    multiply), and the CPU cost per GB of the cold sequential rows; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, LogLocator
    except ImportError:
        return False
    shown = [w for w in workloads if any(w.ratio(c) is not None for c in w.comparisons)]
    sequential = next((w for w in workloads if w.key == "sequential" and w.rows), None)
    panels = len(shown) + (sequential is not None)
    if not panels:
        return False
    columns = min(3, panels)
    rows = -(-panels // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.4 * columns, 4.4 * rows), squeeze=False)
    for axis in axes.flat[panels:]:
        axis.set_visible(False)
    times = FuncFormatter(lambda value, _: f"{value:g}x")
    for axis, workload in zip(axes.flat, shown, strict=False):
        compared = [(c, r) for c in workload.comparisons if (r := workload.ratio(c)) is not None]
        values = [r for _, r in compared]
        colours = ["tab:gray" if c.target is None else "tab:green" if r >= c.target else "tab:red" for c, r in compared]
        bars = axis.bar(range(len(values)), values, color=colours)
        axis.set_xticks(range(len(values)), [f"{c.subject}\n÷ {c.peer}" for c, _ in compared], fontsize=8)
        axis.set_yscale("log")
        axis.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.yaxis.set_major_formatter(times)
        axis.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
        axis.axhline(1.0, color="black", linewidth=0.8)
        targets = [c.target for c, _ in compared if c.target is not None]
        low, high = min([*values, *targets, 1.0]), max([*values, *targets, 1.0])
        axis.set_ylim(low / 2, high * 2)
        for index, (comparison, _) in enumerate(compared):
            if comparison.target is not None:
                axis.hlines(comparison.target, index - 0.45, index + 0.45, colors="black", linestyles="dashed")
        for bar, value in zip(bars, values, strict=True):
            axis.annotate(f"{value:.2f}x", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom",
                          fontsize=8)
        axis.set_title(workload.title, fontsize=9)
        axis.set_ylabel("portalfs is x times as fast (best runs)", fontsize=8)
    if sequential is not None:
        axis = axes.flat[len(shown)]
        names = [name for name in ("curl", "portalfs-cold", "rclone-cold") if name in sequential.rows]
        bottom = [0.0] * len(names)
        for part, pick in (("portal", lambda run: run.server_cpu), ("mount daemon / curl", lambda run: run.fs_cpu),
                           ("reader", lambda run: run.reader_cpu)):
            heights = []
            for name in names:
                row = sequential.rows[name]
                heights.append((row.median_of(pick) or 0.0) / (row.best().payload_bytes / 1e9))
            axis.bar(names, heights, bottom=bottom, label=part)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        axis.set_ylabel("CPU seconds per GB (medians)", fontsize=8)
        axis.set_title("CPU cost of the cold sequential read", fontsize=9)
        axis.legend(fontsize=8)
    figure.suptitle(f"portalfs mount reads against peers measured in the same run; {subtitle}\n"
                    "green/red: target (dashed line) met/not met; gray: no target", fontsize=9)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return True


def describe_machine() -> dict:
    def first_line(command: list[str]) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True, check=False).stdout.split("\n")[0]
        except OSError:
            return "missing"

    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT,
                            check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "portal", "vfs", "cache", "mount", "wire"],
                           capture_output=True, text=True, cwd=REPO_ROOT, check=False).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "curl": first_line(["curl", "--version"]),
        "rclone": first_line(["rclone", "version"]),
        "git_commit": commit,
        "product_tree_dirty": bool(dirty),
    }


# ---------------------------------------------------------------------- main


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, through every unmount and the clean-up in :func:`main`."""
    raise KeyboardInterrupt


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the large file (default 1024 MiB)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds of every workload (default 3)")
    parser.add_argument("--tree-repeats", type=int, default=1,
                        help="rounds that include the small-file tree (default 1: about 4 minutes a round today)")
    parser.add_argument("--random-reads", type=int, default=2000, help="4 KiB preads per random run (default 2000)")
    parser.add_argument("--tree-folders", type=int, default=100, help="folders in the small-file tree (default 100)")
    parser.add_argument("--tree-files", type=int, default=100, help="files per folder (default 100)")
    parser.add_argument("--tree-file-bytes", type=int, default=4096, help="size of each small file (default 4096)")
    parser.add_argument("--threads", type=int, default=8, help="reader threads for the tree read (default 8)")
    parser.add_argument("--phases", default="sequential,random,tree",
                        help="comma-separated subset of sequential (workloads 1-2), random (3), tree (4-5)")
    parser.add_argument("--no-drop-caches", action="store_true", help="skip the reads after drop_caches")
    parser.add_argument("--tmp", type=Path, default=None, help="where to put the portal, mounts and caches")
    parser.add_argument("--no-save", action="store_true", help="write neither the JSON nor the chart")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) after unmounting")
    args = parser.parse_args(argv)
    args.phases = [phase.strip() for phase in args.phases.split(",") if phase.strip()]
    unknown = set(args.phases) - {"sequential", "random", "tree"}
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for tool in ("rclone", "curl", "fusermount3"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (./dev setup installs it)")

    load_before = os.getloadavg()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="portalfs-bench-mount-", dir=args.tmp))
    mountpoints = [work / "mnt-portalfs", work / "mnt-rclone"]
    try:
        print(f"building the store in {work}: {args.size_mib} MiB file, "
              f"{args.tree_folders * args.tree_files} small files", flush=True)
        blob = build_store(work / "portal", args.size_mib * MiB, args.tree_folders, args.tree_files,
                           args.tree_file_bytes)
        can_drop = not args.no_drop_caches and os.geteuid() == 0
        workloads = make_workloads(args, can_drop)
        with running_portal(work / "portal") as portal:
            print(f"portal {portal.url} (pid {portal.process.pid})", flush=True)
            bench = Bench(args, work, portal, blob, Meter(portal, RequestLog(portal)),
                          [PortalfsMounter(portal, mountpoints[0]), RcloneMounter(portal, mountpoints[1], work)],
                          workloads, can_drop)
            phases = {"sequential": bench.sequential_round, "random": bench.random_round, "tree": bench.tree_round}
            failure = None
            try:
                for round_number in range(args.repeats):
                    for phase in args.phases:
                        if phase == "tree" and round_number >= args.tree_repeats:
                            continue
                        print(f"  round {round_number + 1}/{args.repeats}: {phase}", flush=True)
                        phases[phase](round_number)
            except Exception as exc:  # report what was measured before it; exit non-zero below
                failure = f"{type(exc).__name__}: {str(exc)[-3000:]}"
                print(f"\nstopped early by {failure}\n", file=sys.stderr, flush=True)
        workloads = {key: workload for key, workload in workloads.items() if workload.rows}
        load_after = os.getloadavg()
        print()
        for workload in workloads.values():
            print(table(workload))
            print()
        print("Medians of: req = requests the portal logged; log MB = content bytes those replies promised; "
              "store MB = what the portal read from its store (rchar; it reads ahead of a client that hangs up); "
              "client MB = what rclone says it downloaded (rc core/stats).\nCPU: srv = the portal, "
              "fs = the mount daemon (curl for the curl row), rd = the reader.  MB = 10^6 bytes.")
        print(f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after, on {os.cpu_count()} CPUs"
              " (a load above the CPU count means other work competed with this run)")
        targets = {}
        for workload in workloads.values():
            for comparison in workload.comparisons:
                if comparison.target_key and (ratio := workload.ratio(comparison)) is not None:
                    targets[comparison.target_key] = {"text": TARGETS_TEXT[comparison.target_key], "ratio": ratio,
                                                      "target": comparison.target, "met": ratio >= comparison.target}
        print("\ntargets:")
        for target in targets.values():
            print(f"  {target['text']:<62} {target['ratio']:7.2f}x  {'met' if target['met'] else 'NOT MET'}")
        report = {
            "benchmark": "mount_read",
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "settings": {key: value for key, value in vars(args).items() if key != "tmp"},
            "drop_caches": can_drop,
            "statistic": "best (shortest) of the repeats; medians also given; ratios from best runs",
            "machine": describe_machine(),
            "load_average_1min": {"before": load_before[0], "after": load_after[0]},
            "elapsed_seconds": time.monotonic() - started,
            "workloads": {
                w.key: {
                    "title": w.title, "unit": w.unit,
                    "rows": [row.as_json(w.rate) for row in w.rows.values()],
                    "ratios": [{"subject": c.subject, "peer": c.peer, "ratio": w.ratio(c), "target": c.target}
                               for c in w.comparisons],
                } for w in workloads.values()
            },
            "targets": targets,
            "error": failure,
        }
        if not args.no_save:
            RESULTS_DIR.mkdir(exist_ok=True)
            stem = RESULTS_DIR / f"mount_read-{time.strftime('%Y%m%d-%H%M%S')}"
            stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
            print(f"\nresults written to {stem.with_suffix('.json').relative_to(REPO_ROOT)}")
            subtitle = (f"{args.size_mib} MiB file, best of {args.repeats}, load {load_before[0]:.1f}->"
                        f"{load_after[0]:.1f} on {os.cpu_count()} CPUs")
            if draw_chart(list(workloads.values()), stem.with_suffix(".png"), subtitle):
                print(f"chart written to {stem.with_suffix('.png').relative_to(REPO_ROOT)}")
            else:
                print("no chart: matplotlib is missing (./dev bench installs requirements-bench.txt)")
        return 0 if failure is None else 1
    finally:
        for mountpoint in mountpoints:  # belt and braces: never delete through a live mount
            if is_mounted(mountpoint):
                unmount(mountpoint)
        if any(is_mounted(mountpoint) for mountpoint in mountpoints):
            print(f"warning: a mount is still up; left {work} in place", file=sys.stderr)
        elif args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        status = main()
    except KeyboardInterrupt:
        print("interrupted; mounts taken down, portal stopped, temporary files removed", file=sys.stderr)
        status = 130
    sys.exit(status)
