"""How fast does written data reach the portal through a portalfs mount, next to curl and rclone?

Writing through the mount is staged locally and uploaded whole in the
background, so the moment that counts is when *the portal* has the data, not
when ``close()`` returns.  This benchmark starts one reference portal
(``portalfs serve`` on loopback, HTTPS, empty) and measures, in interleaved
rounds against it:

1. **sequential write** of a large file of random bytes (1 GiB by default):
   a Python loop of 1 MiB writes from a page-cached source file into the
   mount, then ``close()``, timed until the portal lists the file with its full
   size (its upload is committed only when complete), through portalfs and
   through ``rclone mount`` (WebDAV backend on ``/ServicesPortal/webdav``,
   ``--vfs-cache-mode full``), next to ``curl`` sending the same file with the
   portal's multipart upload (the endpoint portalfs uses: the reference peer),
   ``curl -T`` (a WebDAV ``PUT``) and the same loop to the local disk with an
   ``fsync`` (the machine's ceiling for putting that many bytes on disk);
   when ``close()`` returned is recorded too, so the table shows how the time
   splits between staging and uploading;
2. **untar** of a tree of small files (1,000 files of 1-8 KiB in 10 folders by
   default): ``tar -xf`` into the mount, timed until every file is on the
   portal with its size, portalfs next to rclone (and ``tar`` into a local
   directory, no upload, for scale);
3. **close() latency** of small files: ``--latency-files`` times
   create + write 4 KiB + ``close()``, one at a time, through both mounts and
   on the local disk, without and with an ``fsync`` before the close (portalfs
   makes a written file durable in its cache before ``close()`` returns, so
   ``local-fsync`` is its fair local peer): p50 and p99 of each step's latency.

Both mounts get the same write-back delay (``--upload-delay``: portalfs's
``upload_delay``, rclone's ``--vfs-write-back``; their defaults are 2 s and
5 s), so neither wins by waiting less.  The portal is watched by a client of
its own (``harness.portal_state``), polling listings every 50 ms; after each
run the uploaded bytes are checked against the source (a digest of the large
file, a sample of the tree).  Every run starts with the portal and the mount
idle and its untimed tail until they are idle again is charged to it
(``harness.meter``); each mount run gets a fresh mount and an empty cache
directory.

The statistic is the best run, with the median next to it; ratios are "portalfs
is x times as fast as the peer" from best runs (for latencies: the peer's
percentile divided by portalfs's).  The issue's target is *reported*, never
asserted: the sequential write at least 0.8x curl's upload.  The untar and
the latencies have no numeric target; their ratios are shown for the record.

Run it with ``./dev bench mount_write`` (``-- --help`` for the knobs, ``--
--quick`` for a one-round run on a 64 MiB file and 200 small files in about a
minute); it needs root for FUSE, ``rclone``, ``curl`` and ``tar``, and about
six times the file size of free space.  Results go to
``tests/bench/results/mount_write-<time>.json`` with a bar chart of the
ratios next to it (``.png``).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.harness.curl import Uploader, curl_put
from tests.bench.harness.meter import Meter
from tests.bench.harness.mounts import Mount, Mounter, PortalfsMounter, RcloneMounter
from tests.bench.harness.portal_state import PortalState, portal_state
from tests.bench.harness.report import (
    WRITE_COLUMNS,
    Bar,
    CpuPanel,
    Panel,
    draw_chart,
    save_results,
    summarize,
    table,
    workload_panel,
)
from tests.bench.harness.results import KiB, MB, MiB, Comparison, Run, Workload, expect
from tests.bench.harness.session import (
    MountBench,
    add_work_arguments,
    parse_phases,
    prepare,
    run_main,
    work_directory,
    write_random_file,
)
from tests.support.portal_process import running_portal
from tests.support.request_log import RequestLog

WRITE_BUFFER = 1 * MiB
SMALL_FILE = 4 * KiB
TREE_ROOT = "tree"
TARGETS_TEXT = {"sequential-vs-curl": "sequential write until on the portal >= 0.8x curl's upload"}
LATENCY_ROWS = {
    "portalfs": "portalfs mount: create, write 4 KiB, close",
    "rclone": "rclone mount: create, write 4 KiB, close",
    "local": "local disk: create, write 4 KiB, close",
    "local-fsync": "local disk: create, write 4 KiB, fsync, close",
}


# -------------------------------------------------------------------- inputs


def build_tarball(path: Path, folders: int, files: int, rng: random.Random) -> dict[str, bytes]:
    """A tar of ``tree/dNN/fNNNN.bin``, ``files`` random files of 1-8 KiB spread over ``folders``
    folders; its members' contents by path."""
    members: dict[str, bytes] = {}
    with tarfile.open(path, "w") as tar:
        for folder in range(folders):
            info = tarfile.TarInfo(f"{TREE_ROOT}/d{folder:02d}")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
            tar.addfile(info)
        for index in range(files):
            name = f"{TREE_ROOT}/d{index % folders:02d}/f{index:04d}.bin"
            content = rng.randbytes(rng.randrange(1 * KiB, 8 * KiB + 1))
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(content))
            members[name] = content
    return members


# ------------------------------------------------------------------- writers


def copy_file(source: Path, target: Path, *, fsync: bool, moments: dict[str, float], started: float) -> int:
    """``source`` into a new ``target`` with 1 MiB writes, then close; ``moments["closed"]``
    says when ``close()`` returned (seconds after ``started``)."""
    buffer = bytearray(WRITE_BUFFER)
    view = memoryview(buffer)
    moved = 0
    with open(source, "rb", buffering=0) as src:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            while count := src.readinto(buffer):
                written = 0
                while written < count:
                    written += os.write(fd, view[written:count])
                moved += count
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
    moments["closed"] = time.perf_counter() - started
    return moved


def read_through(path: Path) -> None:
    buffer = bytearray(WRITE_BUFFER)
    with open(path, "rb", buffering=0) as source:
        while source.readinto(buffer):
            pass


def untar(tarball: Path, into: Path) -> None:
    into.mkdir()
    result = subprocess.run(["tar", "-xf", str(tarball), "-C", str(into)], capture_output=True, text=True,
                            timeout=1800, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"tar -x into {into} failed ({result.returncode}): {result.stderr[-2000:]}")


@dataclass
class Latencies:
    """Per-file seconds of one batch: the whole create+write+close, and the close alone."""

    total: list[float] = field(default_factory=list)
    close: list[float] = field(default_factory=list)


def small_files(folder: Path, count: int, *, fsync: bool, into: Latencies) -> tuple[int, int]:
    """``count`` new files of 4 KiB in ``folder``, one at a time, timing each."""
    folder.mkdir()
    content = os.urandom(SMALL_FILE)
    for index in range(count):
        started = time.perf_counter()
        fd = os.open(folder / f"s{index:05d}.bin", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, content)
            if fsync:
                os.fsync(fd)
        finally:
            closing = time.perf_counter()
            os.close(fd)
        ended = time.perf_counter()
        into.total.append(ended - started)
        into.close.append(ended - closing)
    return count, count * SMALL_FILE


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (no interpolation: a p99 of 200 samples is the 198th)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


# --------------------------------------------------------------------- phases


@dataclass
class Bench(MountBench):
    state: PortalState
    uploader: Uploader
    source: Path
    source_digest: str
    members: dict[str, bytes]

    def record(self, workload: str, row: str, description: str, run: Run) -> None:
        w = self.workloads[workload]
        w.row(row, description).runs.append(run)
        closed = f", close() after {run.details['closed']:.2f} s" if "closed" in run.details else ""
        client = "" if run.client_bytes is None else f", rclone moved {run.client_bytes / MB:.1f} MB"
        print(f"    {row:<12} {run.seconds:8.2f} s {w.rate(run):10.1f} {w.unit:<8} portal {run.portal_requests:5d} req"
              f"{closed}{client}", flush=True)

    def timed(self, action: Callable[[dict[str, float], float], tuple[int, int]], *, mount: Mount | None = None,
              child_reader: bool = False, child_fs: bool = False) -> Run:
        """A meter run of ``action(moments, started)``, the moments it noted kept in the run."""
        moments: dict[str, float] = {}
        run = self.meter.run(lambda: action(moments, time.perf_counter()), mount=mount, child_reader=child_reader,
                             child_fs=child_fs)
        run.details.update(moments)
        return run

    def check_large(self, name: str, what: str) -> None:
        if self.state.sha256(name) != self.source_digest:
            raise RuntimeError(f"{what}: the portal's {name} differs from the source file")

    def check_tree(self, folder: str, rng: random.Random, what: str) -> None:
        for member in rng.sample(sorted(self.members), min(20, len(self.members))):
            if self.state.read(f"{folder}/{member}") != self.members[member]:
                raise RuntimeError(f"{what}: the portal's {folder}/{member} has the wrong content")

    # -- workload 1

    def sequential_round(self, round_number: int) -> None:
        size, timeout = self.size, max(300.0, self.size / (2 * MB))
        read_through(self.source)  # untimed: the source in page cache, for every row alike
        local = self.work / f"local-seq-{round_number}.bin"

        def to_local(moments: dict[str, float], started: float) -> tuple[int, int]:
            moved = copy_file(self.source, local, fsync=True, moments=moments, started=started)
            return moved, moved

        self.record("sequential", "local-fsync", "the same 1 MiB write loop to the local disk, fsync, close",
                    expect(self.timed(to_local), size, "local write"))
        local.unlink()
        name = f"seq-curl-{round_number}.bin"
        self.record("sequential", "curl-upload", "curl, the portal's multipart upload (portalfs's endpoint)",
                    expect(self.timed(lambda _, __: self.uploader.upload(self.source, name), child_fs=True),
                           size, "curl upload"))
        self.check_large(name, "curl upload")
        name = f"seq-put-{round_number}.bin"
        self.record("sequential", "curl-put", "curl -T, a WebDAV PUT",
                    expect(self.timed(lambda _, __: curl_put(self.portal, self.source, name), child_fs=True),
                           size, "curl PUT"))
        self.check_large(name, "curl PUT")
        for mounter in self.order(round_number):
            cache = self.fresh_cache(mounter)
            name = f"seq-{mounter.name}-{round_number}.bin"
            with mounter.mount(cache) as mount:
                def through_mount(moments: dict[str, float], started: float, root: Path = mount.root,
                                  name: str = name) -> tuple[int, int]:
                    moved = copy_file(self.source, root / name, fsync=False, moments=moments, started=started)
                    self.state.wait_for_files({name: moved}, timeout=timeout)
                    return moved, moved

                run = self.timed(through_mount, mount=mount)
                self.record("sequential", mounter.name,
                            f"{mounter.name} mount: 1 MiB writes, close, until the portal has the file",
                            expect(run, size, f"{mounter.name} write"))
            self.check_large(name, f"{mounter.name} write")
            shutil.rmtree(cache, ignore_errors=True)

    # -- workload 2

    def untar_round(self, round_number: int) -> None:
        count, tarball = len(self.members), self.work / "tree.tar"
        local = self.work / f"local-untar-{round_number}"

        def to_local(moments: dict[str, float], started: float) -> tuple[int, int]:
            untar(tarball, local)
            return count, sum(map(len, self.members.values()))

        self.record("untar", "local", "tar -xf into a local directory (no upload)",
                    expect(self.timed(to_local, child_reader=True), count, "local untar"))
        shutil.rmtree(local)
        for mounter in self.order(round_number):
            cache = self.fresh_cache(mounter)
            folder = f"untar-{mounter.name}-{round_number}"
            expected = {f"{folder}/{member}": len(content) for member, content in self.members.items()}
            with mounter.mount(cache) as mount:
                def through_mount(moments: dict[str, float], started: float, root: Path = mount.root,
                                  folder: str = folder, expected: dict[str, int] = expected) -> tuple[int, int]:
                    untar(tarball, root / folder)
                    moments["extracted"] = time.perf_counter() - started
                    self.state.wait_for_files(expected, timeout=1800)
                    return len(expected), sum(expected.values())

                run = self.timed(through_mount, mount=mount, child_reader=True)
                self.record("untar", mounter.name, f"{mounter.name} mount: tar -xf, until every file is on the portal",
                            expect(run, count, f"{mounter.name} untar"))
            self.check_tree(folder, random.Random(round_number), f"{mounter.name} untar")
            shutil.rmtree(cache, ignore_errors=True)

    # -- workload 3

    def latency_round(self, round_number: int) -> None:
        count = self.args.latency_files
        for fsync in (False, True):
            row = "local-fsync" if fsync else "local"
            folder = self.work / f"latency-{row}-{round_number}"
            samples = Latencies()
            run = self.timed(lambda _, __: small_files(folder, count, fsync=fsync, into=samples))
            self.record_latency(row, run, samples)
            shutil.rmtree(folder)
        for mounter in self.order(round_number):
            cache = self.fresh_cache(mounter)
            folder = f"latency-{mounter.name}-{round_number}"
            with mounter.mount(cache) as mount:
                samples = Latencies()
                run = self.timed(lambda _, __, root=mount.root, folder=folder, samples=samples:
                                 small_files(root / folder, count, fsync=False, into=samples), mount=mount)
                self.record_latency(mounter.name, run, samples)
                # untimed: the uploads finish before the mount goes (and before the next row starts)
                self.state.wait_for_files({f"{folder}/s{index:05d}.bin": SMALL_FILE for index in range(count)},
                                          timeout=1800)
            shutil.rmtree(cache, ignore_errors=True)

    def record_latency(self, row: str, run: Run, samples: Latencies) -> None:
        for step, values in (("total", samples.total), ("close", samples.close)):
            for name, fraction in (("p50", 0.50), ("p99", 0.99)):
                run.details[f"{step}_{name}"] = percentile(values, fraction)
        self.record("latency", row, LATENCY_ROWS[row], expect(run, self.args.latency_files, f"{row} small files"))


def make_workloads(args: argparse.Namespace) -> dict[str, Workload]:
    size = f"{args.size_mib} MiB"
    sequential = Workload("sequential", f"1. sequential write of a {size} file, until the portal has it", "MB/s",
                          True, comparisons=[
                              Comparison("portalfs", "curl-upload", 0.8, "sequential-vs-curl"),
                              Comparison("portalfs", "curl-put"),
                              Comparison("portalfs", "rclone"),
                              Comparison("portalfs", "local-fsync"),
                          ])
    untar = Workload("untar", f"2. untar of {args.tree_files} files of 1-8 KiB in {args.tree_folders} folders, "
                              "until all are on the portal", "files/s", False,
                     comparisons=[Comparison("portalfs", "rclone"), Comparison("portalfs", "local")])
    latency = Workload("latency", f"3. {args.latency_files} small files, one at a time: create, write 4 KiB, close",
                       "files/s", False, comparisons=[Comparison("portalfs", "rclone"),
                                                      Comparison("portalfs", "local-fsync"),
                                                      Comparison("portalfs", "local")])
    chosen = {"sequential": sequential, "untar": untar, "latency": latency}
    return {chosen[phase].key: chosen[phase] for phase in args.phases}


# -------------------------------------------------------------------- report


def median_detail(workload: Workload, row: str, key: str) -> float | None:
    return workload.rows[row].median_of(lambda run: run.details.get(key)) if row in workload.rows else None


def latency_table(workload: Workload) -> tuple[str, list[Bar], dict]:
    """p50/p99 of the whole step and of close() alone (medians over the runs), the ratios of
    portalfs's to each peer's, as text, chart bars and JSON."""
    keys = ["total_p50", "total_p99", "close_p50", "close_p99"]
    lines = [f"{workload.title}: latency per file, ms (median over runs of each run's percentile)",
             f"{'row':<14} {'p50':>8} {'p99':>8} {'close p50':>10} {'close p99':>10}"]
    numbers: dict[str, dict[str, float | None]] = {}
    for row in workload.rows:
        numbers[row] = {key: median_detail(workload, row, key) for key in keys}
        lines.append(f"{row:<14} " + " ".join(
            f"{'-' if (value := numbers[row][key]) is None else f'{value * 1000:.3f}':>{width}}"
            for key, width in zip(keys, (8, 8, 10, 10), strict=True)))
    bars = []
    for comparison in workload.comparisons:
        subject, peer = numbers.get(comparison.subject), numbers.get(comparison.peer)
        if not subject or not peer:
            continue
        parts = []
        for key in ("total_p50", "total_p99"):
            if subject[key] and peer[key]:
                ratio = peer[key] / subject[key]
                parts.append(f"{key.removeprefix('total_')} {ratio:.2f}x")
                bars.append(Bar(f"÷ {comparison.peer}\n{key.removeprefix('total_')}", ratio))
        lines.append(f"  {comparison.subject} / {comparison.peer} (shorter latency = faster): {', '.join(parts)}")
    return "\n".join(lines), bars, numbers


def sequential_notes(workload: Workload) -> str:
    lines = []
    for row in ("portalfs", "rclone"):
        closed, total = median_detail(workload, row, "closed"), workload.rows.get(row)
        if closed is not None and total is not None:
            lines.append(f"  {row}: close() returned after {closed:.2f} s (median), the portal had the file "
                         f"{total.median_seconds() - closed:.2f} s later")
    return "\n".join(lines)


def untar_notes(workload: Workload, files: int) -> str:
    lines = []
    for name in ("portalfs", "rclone"):
        row = workload.rows.get(name)
        if row is None:
            continue
        extracted = median_detail(workload, name, "extracted")
        requests = row.median_of(lambda run: run.portal_requests) or 0
        lines.append(f"  {name}: tar returned after {extracted:.2f} s (median), all on the portal "
                     f"{row.median_seconds() - (extracted or 0):.2f} s later; {requests / files:.2f} portal "
                     "requests per file (includes the watcher's listings)")
    return "\n".join(lines)


# ---------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="one round, a 64 MiB file, 200 small files to untar and 100 for latencies "
                             "(explicit sizes below still win)")
    parser.add_argument("--size-mib", type=int, default=None, help="size of the large file (default 1024 MiB)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds of every workload (default 3)")
    parser.add_argument("--tree-files", type=int, default=None, help="files in the tarball (default 1000)")
    parser.add_argument("--tree-folders", type=int, default=10, help="folders they are spread over (default 10)")
    parser.add_argument("--latency-files", type=int, default=None,
                        help="small files per close() latency run (default 500)")
    parser.add_argument("--upload-delay", type=float, default=0.5,
                        help="write-back delay for both mounts: portalfs upload_delay, rclone --vfs-write-back "
                             "(default 0.5 s)")
    parser.add_argument("--phases", default="sequential,untar,latency",
                        help="comma-separated subset of sequential (workload 1), untar (2), latency (3)")
    add_work_arguments(parser)
    args = parser.parse_args(argv)
    defaults = {"size_mib": (64, 1024), "repeats": (1, 3), "tree_files": (200, 1000), "latency_files": (100, 500)}
    for key, (quick, full) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    args.phases = parse_phases(parser, args.phases, ["sequential", "untar", "latency"])
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    prepare(["rclone", "curl", "tar", "fusermount3"])
    load_before = os.getloadavg()
    started = time.monotonic()
    with work_directory("portalfs-bench-write-", args.tmp, ["mnt-portalfs", "mnt-rclone"], keep=args.keep) as work:
        print(f"preparing {work}: {args.size_mib} MiB source file, a tarball of {args.tree_files} files", flush=True)
        source = work / "source.bin"
        digest = write_random_file(source, args.size_mib * MiB)
        members = build_tarball(work / "tree.tar", args.tree_folders, args.tree_files, random.Random(7))
        workloads = make_workloads(args)
        delay = f"{args.upload_delay:g}"
        with running_portal(work / "portal") as portal, portal_state(portal) as state:
            print(f"portal {portal.url} (pid {portal.process.pid}); write-back delay {delay} s", flush=True)
            mounters: list[Mounter] = [
                PortalfsMounter(portal, work / "mnt-portalfs", [f"upload_delay={delay}"]),
                RcloneMounter(portal, work / "mnt-rclone", work, read_only=False,
                              extra=["--vfs-write-back", f"{delay}s"]),
            ]
            bench = Bench(args, work, portal, Meter(portal, RequestLog(portal)), mounters, workloads, state=state,
                          uploader=Uploader.logged_in(portal, work / "cookies.txt"), source=source,
                          source_digest=digest, members=members)
            failure = bench.run_rounds({"sequential": bench.sequential_round, "untar": bench.untar_round,
                                        "latency": bench.latency_round})
        workloads = {key: workload for key, workload in workloads.items() if workload.rows}
        load_after = os.getloadavg()
        print()
        latency_bars: list[Bar] = []
        latency_numbers: dict = {}
        for workload in workloads.values():
            print(table(workload, WRITE_COLUMNS))
            if workload.key == "sequential":
                print(sequential_notes(workload))
            elif workload.key == "untar":
                print(untar_notes(workload, len(members)))
            elif workload.key == "latency":
                text, latency_bars, latency_numbers = latency_table(workload)
                print("\n" + text)
            print()
        print("Medians of: req = requests the portal logged (the watcher's listings included); wrote MB = what the "
              "portal wrote (wchar: blobs, database, its log); client MB = what rclone says it moved (rc "
              "core/stats).\nCPU: srv = the portal, fs = the mount daemon (curl for the curl rows), wr = the "
              "writer (this process, or tar) and the watcher.  MB = 10^6 bytes.")
        report = summarize("mount_write", args,
                           "best (shortest) of the repeats; medians also given; ratios from best runs; "
                           "latencies: median over runs of each run's nearest-rank percentile",
                           started=started, load=(load_before[0], load_after[0]), workloads=workloads,
                           targets_text=TARGETS_TEXT, failure=failure, latency_seconds=latency_numbers)
        if not args.no_save:
            subtitle = (f"{args.size_mib} MiB file, {args.tree_files} files, best of {args.repeats}, write-back "
                        f"{delay} s, load {load_before[0]:.1f}->{load_after[0]:.1f} on {os.cpu_count()} CPUs")
            panels = [workload_panel(w) for w in workloads.values() if w.key != "latency"]
            if latency_bars:
                panels.append(Panel(f"{workloads['latency'].title}\n(peer's latency / portalfs's)", latency_bars,
                                    "portalfs is x times as fast (median of runs)"))
            sequential = workloads.get("sequential")
            cpu = None if sequential is None else CpuPanel(
                "CPU cost of the sequential write", sequential, ["curl-upload", "curl-put", "portalfs", "rclone"],
                [("portal", lambda run: run.server_cpu), ("mount daemon / curl", lambda run: run.fs_cpu),
                 ("writer + watcher", lambda run: run.reader_cpu)])
            save_results("mount_write", report, lambda out: draw_chart(
                panels, out, "portalfs mount writes against peers measured in the same run", subtitle, cpu))
        return 0 if failure is None else 1


if __name__ == "__main__":
    run_main(main)
