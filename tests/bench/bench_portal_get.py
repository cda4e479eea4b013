"""How fast does the reference portal serve one large file over HTTPS GET?

The FUSE client reads file content with WebDAV ``GET`` (whole files and byte
ranges), so the portal's download path bounds what a mount can ever deliver.
This benchmark starts a real ``portalfs serve`` on loopback, uploads one file
of random bytes (1 GiB by default) to ``My Files/bench.bin`` through the
multipart upload endpoint, and then downloads it, every way several times:

* ``curl``            one connection, C client: the best a stock client gets
                      from this server (the "peer" the others are measured
                      against);
* ``httpx-sync``      one streamed connection with httpx's blocking client;
* ``httpx-trio``      one streamed connection with ``httpx.AsyncClient`` on trio,
                      which is what the FUSE client (pyfuse3 runs on trio) uses;
* ``httpx-ranges``    ``--connections`` keep-alive connections on trio pulling
                      ``--range-mib`` byte ranges from a shared queue, to show
                      what parallel ranged reads buy;
* ``local-read``      a Python read loop over the same bytes in a local,
                      page-cached file: the ceiling no network path can beat.

Every transfer is timed by wall clock including connection set-up; the table
reports the best run (and the median) in MB/s (10^6 bytes per second) and each
best as a ratio of curl's best and of the local read's best.  Speed is never
asserted: the ratios are meaningful because every row was measured in the same
run on the same machine.  The server's own CPU time per run is recorded too,
since on a small machine a CPU-bound server is the usual limit.

Run it with ``./dev bench portal_get`` (or ``python -m tests.bench.bench_portal_get``);
results also go to ``tests/bench/results/portal_get-<time>.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx
import trio

from tests.bench.harness.session import write_random_file
from tests.support.portal_process import PortalProcess, running_portal
from wire import ctera_xml

MiB = 1 << 20
MB = 1_000_000
CONTEXT = "/ServicesPortal"
USER = "alice"
REMOTE_NAME = "bench.bin"
REMOTE_PATH = f"{CONTEXT}/webdav/My%20Files/{REMOTE_NAME}"
READ_BUFFER = 1 * MiB
RESULTS_DIR = Path(__file__).resolve().with_name("results")
REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = httpx.Timeout(120.0)


# ------------------------------------------------------------------ results


@dataclass
class Run:
    seconds: float
    #: CPU seconds the portal process spent during the run (None when unknown)
    server_cpu: float | None
    #: CPU seconds the client spent (this process, or curl)
    client_cpu: float


@dataclass
class Measurement:
    name: str
    description: str
    nbytes: int
    runs: list[Run] = field(default_factory=list)

    def rates(self) -> list[float]:
        return [self.nbytes / run.seconds / MB for run in self.runs]

    def best(self) -> float:
        return max(self.rates())

    def median(self) -> float:
        return statistics.median(self.rates())

    def best_run(self) -> Run:
        return min(self.runs, key=lambda run: run.seconds)

    def server_cpu_per_gb(self) -> float | None:
        """Median portal CPU seconds per 10^9 bytes: unlike MB/s, barely moved by other load."""
        spent = [run.server_cpu for run in self.runs if run.server_cpu is not None]
        return statistics.median(spent) / (self.nbytes / 1e9) if spent else None

    def client_cpu_per_gb(self) -> float:
        return statistics.median(run.client_cpu for run in self.runs) / (self.nbytes / 1e9)

    def as_json(self) -> dict:
        best = self.best_run()
        return {
            "name": self.name,
            "description": self.description,
            "bytes": self.nbytes,
            "runs": [vars(run) for run in self.runs],
            "mb_per_s": self.rates(),
            "best_mb_per_s": self.best(),
            "median_mb_per_s": self.median(),
            "best_server_cpu_fraction": best.server_cpu / best.seconds if best.server_cpu is not None else None,
            "best_client_cpu_fraction": best.client_cpu / best.seconds,
            "median_server_cpu_seconds_per_gb": self.server_cpu_per_gb(),
            "median_client_cpu_seconds_per_gb": self.client_cpu_per_gb(),
        }


# ------------------------------------------------------------ measuring aids


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of ``pid`` so far, from ``/proc`` (Linux only)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(portal: PortalProcess, transfer: Callable[[], int], expected: int, *, client: str = "self") -> Run:
    """Time one ``transfer`` (which returns the byte count it moved) and the CPU it cost."""
    server_before = process_cpu_seconds(portal.process.pid)
    client_before = time.process_time() if client == "self" else children_cpu_seconds()
    started = time.perf_counter()
    moved = transfer()
    seconds = time.perf_counter() - started
    client_cpu = (time.process_time() if client == "self" else children_cpu_seconds()) - client_before
    server_after = process_cpu_seconds(portal.process.pid)
    if moved != expected:
        raise RuntimeError(f"transfer moved {moved} bytes, expected {expected}")
    server_cpu = server_after - server_before if server_before is not None and server_after is not None else None
    return Run(seconds, server_cpu, client_cpu)


# ------------------------------------------------------------------ set-up


def portal_client(portal: PortalProcess, **kwargs) -> httpx.Client:
    return httpx.Client(base_url=portal.url, verify=verify_for(portal), timeout=TIMEOUT, **kwargs)


def verify_for(portal: PortalProcess) -> str | bool:
    return str(portal.cert) if portal.cert else False


def cloud_folder_uid(client: httpx.Client) -> str:
    """``cloudFolderInfo.uid`` of ``My Files``, from a depth-0 ``fetchResources``."""
    param = ctera_xml.obj("FetchResourcesParam", start=0, limit=100, root=f"{CONTEXT}/webdav/My%20Files", depth=0)
    call = ctera_xml.obj(None, type="user-defined", name="fetchResources", param=param)
    reply = client.post(f"{CONTEXT}/api", content=ctera_xml.encode(call), headers={"content-type": "text/xml"})
    reply.raise_for_status()
    answer = ctera_xml.as_obj(ctera_xml.decode(reply.content))
    root = ctera_xml.as_obj(answer.get("root")) if answer else None
    info = ctera_xml.as_obj(root.get("cloudFolderInfo")) if root else None
    uid = ctera_xml.as_str(info.get("uid")) if info else None
    if not uid:
        raise RuntimeError(f"no cloud folder uid in fetchResources reply: {reply.text[:500]}")
    return uid


def multipart_upload_body(source: Path, fields: dict[str, str], boundary: str) -> tuple[Iterator[bytes], int]:
    """A streamed ``multipart/form-data`` body (text fields, then ``file``) and its exact length."""
    head = bytearray()
    for name, value in fields.items():
        head += (
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    head += (
        f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{source.name}"\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = source.stat().st_size

    def chunks() -> Iterator[bytes]:
        yield bytes(head)
        with open(source, "rb") as content:
            while piece := content.read(READ_BUFFER):
                yield piece
        yield tail

    return chunks(), len(head) + size + len(tail)


def upload(portal: PortalProcess, source: Path) -> float:
    """Log in, upload ``source`` as ``My Files/bench.bin``; return the seconds it took."""
    with portal_client(portal) as client:
        login = client.post(f"{CONTEXT}/api/login", data={"j_username": USER, "j_password": portal.users[USER]})
        login.raise_for_status()
        uid = cloud_folder_uid(client)
        fields = {
            "name": REMOTE_NAME,
            "Filename": REMOTE_NAME,
            "fullpath": f"{portal.url}{REMOTE_PATH}",
            "fileSize": str(source.stat().st_size),
        }
        boundary = uuid.uuid4().hex
        body, length = multipart_upload_body(source, fields, boundary)
        started = time.perf_counter()
        reply = client.post(
            f"{CONTEXT}/upload/folders/{urllib.parse.quote(uid, safe='')}",
            content=body,
            headers={"content-type": f"multipart/form-data; boundary={boundary}", "content-length": str(length)},
        )
        seconds = time.perf_counter() - started
        reply.raise_for_status()
        answer = ctera_xml.as_obj(ctera_xml.decode(reply.content))
        rc = ctera_xml.as_int(answer.get("rc")) if answer else None
        if rc != 0:
            raise RuntimeError(f"upload refused: {reply.text[:500]}")
        client.post(f"{CONTEXT}/api/logout")
        return seconds


# ---------------------------------------------------------------- transfers


def basic_auth(portal: PortalProcess) -> tuple[str, str]:
    return USER, portal.users[USER]


def curl_get(portal: PortalProcess) -> int:
    user, password = basic_auth(portal)
    result = subprocess.run(
        ["curl", "-k", "-s", "-S", "-f", "-o", "/dev/null", "-u", f"{user}:{password}",
         "-w", "%{size_download}", portal.url + REMOTE_PATH],
        capture_output=True, text=True, timeout=600, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"curl failed ({result.returncode}): {result.stderr.strip()}")
    return int(result.stdout.strip())


def httpx_sync_get(portal: PortalProcess, on_chunk: Callable[[bytes], object] | None = None) -> int:
    moved = 0
    with portal_client(portal, auth=basic_auth(portal)) as client, client.stream("GET", REMOTE_PATH) as reply:
        reply.raise_for_status()
        for chunk in reply.iter_raw():
            moved += len(chunk)
            if on_chunk is not None:
                on_chunk(chunk)
    return moved


async def _httpx_trio_get(portal: PortalProcess) -> int:
    moved = 0
    async with httpx.AsyncClient(base_url=portal.url, verify=verify_for(portal), timeout=TIMEOUT,
                                 auth=basic_auth(portal)) as client:
        async with client.stream("GET", REMOTE_PATH) as reply:
            reply.raise_for_status()
            async for chunk in reply.aiter_raw():
                moved += len(chunk)
    return moved


def httpx_trio_get(portal: PortalProcess) -> int:
    return trio.run(_httpx_trio_get, portal)


async def _httpx_ranges_get(portal: PortalProcess, size: int, connections: int, range_size: int) -> int:
    starts = iter(range(0, size, range_size))
    moved = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal moved
        for start in starts:  # the shared iterator hands each range to exactly one worker
            end = min(start + range_size, size) - 1
            async with client.stream("GET", REMOTE_PATH, headers={"range": f"bytes={start}-{end}"}) as reply:
                if reply.status_code != 206:
                    raise RuntimeError(f"range {start}-{end}: HTTP {reply.status_code}")
                got = 0
                async for chunk in reply.aiter_raw():
                    got += len(chunk)
                if got != end - start + 1:
                    raise RuntimeError(f"range {start}-{end}: got {got} bytes")
                moved += got

    async with httpx.AsyncClient(base_url=portal.url, verify=verify_for(portal), timeout=TIMEOUT,
                                 auth=basic_auth(portal), limits=limits) as client:
        async with trio.open_nursery() as nursery:
            for _ in range(connections):
                nursery.start_soon(worker, client)
    return moved


def httpx_ranges_get(portal: PortalProcess, size: int, connections: int, range_size: int) -> int:
    return trio.run(_httpx_ranges_get, portal, size, connections, range_size)


def local_read(path: Path) -> int:
    moved = 0
    buffer = bytearray(READ_BUFFER)
    with open(path, "rb", buffering=0) as source:
        while count := source.readinto(buffer):
            moved += count
    return moved


# -------------------------------------------------------------------- report


def table(measurements: list[Measurement], reference: str, ceiling: str) -> str:
    by_name = {m.name: m for m in measurements}
    ref, top = by_name[reference].best(), by_name[ceiling].best()
    lines = [
        f"{'method':<14} {'best MB/s':>10} {'median':>8} {'÷curl':>7} {'÷local':>7} {'srv s/GB':>9} {'cli s/GB':>9}",
    ]
    for m in measurements:
        server = m.server_cpu_per_gb()
        lines.append(
            f"{m.name:<14} {m.best():>10.0f} {m.median():>8.0f} {m.best() / ref:>7.2f} {m.best() / top:>7.2f}"
            f" {'-' if server is None or m.name == ceiling else f'{server:.2f}':>9} {m.client_cpu_per_gb():>9.2f}"
        )
    return "\n".join(lines)


def describe_machine() -> dict:
    curl = subprocess.run(["curl", "--version"], capture_output=True, text=True, check=False).stdout.split("\n")[0]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT,
                            check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "portal"], capture_output=True, text=True,
                           cwd=REPO_ROOT, check=False).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "curl": curl,
        "httpx": httpx.__version__,
        "git_commit": commit,
        "portal_tree_dirty": bool(dirty),
    }


# ---------------------------------------------------------------------- main


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM acts as Ctrl-C: trio turns it into a clean KeyboardInterrupt that
    unwinds through the clean-up in :func:`main`, wherever it lands."""
    signal.raise_signal(signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the test file (default 1024 MiB)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per method (default 5)")
    parser.add_argument("--connections", type=int, default=4, help="parallel connections for ranged GETs")
    parser.add_argument("--range-mib", type=int, default=16, help="size of each ranged GET (default 16 MiB)")
    parser.add_argument("--tmp", type=Path, default=None, help="where to put the temporary portal and file")
    parser.add_argument("--no-save", action="store_true", help="do not write results JSON")
    args = parser.parse_args(argv)
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # Started in the background by a non-interactive shell: SIGINT is ignored,
        # and SIGTERM is delivered as SIGINT below, so it must be live again.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)

    size = args.size_mib * MiB
    load_before = os.getloadavg()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="portalfs-bench-get-", dir=args.tmp))
    try:
        source = work / "source.bin"
        print(f"writing {args.size_mib} MiB of random bytes to {source}", flush=True)
        sha256 = write_random_file(source, size)
        with running_portal(work / "portal") as portal:
            print(f"portal {portal.url} (pid {portal.process.pid}); uploading", flush=True)
            upload_seconds = upload(portal, source)
            print(f"uploaded in {upload_seconds:.1f} s ({size / upload_seconds / MB:.0f} MB/s)", flush=True)

            # Untimed warm-up that also proves the portal hands back the very bytes uploaded.
            digest = hashlib.sha256()
            httpx_sync_get(portal, digest.update)
            if digest.hexdigest() != sha256:
                raise RuntimeError("the downloaded content differs from the uploaded file")
            local_read(source)

            methods: list[tuple[Measurement, Callable[[], int], str]] = [
                (Measurement("curl", "curl -k, one connection, body to /dev/null", size),
                 lambda: curl_get(portal), "children"),
                (Measurement("httpx-sync", "httpx.Client streaming GET, one connection", size),
                 lambda: httpx_sync_get(portal), "self"),
                (Measurement("httpx-trio", "httpx.AsyncClient on trio streaming GET, one connection", size),
                 lambda: httpx_trio_get(portal), "self"),
                (Measurement(f"httpx-{args.connections}x{args.range_mib}M",
                             f"httpx.AsyncClient on trio, {args.connections} connections of "
                             f"{args.range_mib} MiB ranged GETs", size),
                 lambda: httpx_ranges_get(portal, size, args.connections, args.range_mib * MiB), "self"),
                (Measurement("local-read", "Python readinto loop over the page-cached source file", size),
                 lambda: local_read(source), "self"),
            ]
            # Interleave the methods round by round so slow drift (thermal, noisy
            # neighbours) spreads over all of them instead of penalising one.
            for round_number in range(args.repeats):
                for measurement, transfer, client in methods:
                    run = measure(portal, transfer, size, client=client)
                    measurement.runs.append(run)
                    print(f"  round {round_number + 1} {measurement.name:<14} {size / run.seconds / MB:8.0f} MB/s",
                          flush=True)
        measurements = [m for m, _, _ in methods]
        reference, ceiling = measurements[0], measurements[-1]
        print()
        print(f"GET of a {args.size_mib} MiB file from the reference portal over HTTPS on loopback; "
              f"best of {args.repeats} (MB = 10^6 bytes)")
        print(table(measurements, reference.name, ceiling.name))
        load_after = os.getloadavg()
        print(f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after, on {os.cpu_count()} CPUs"
              " (a load above the CPU count means other work competed with this run)")
        report = {
            "benchmark": "portal_get",
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "size_bytes": size,
            "repeats": args.repeats,
            "statistic": "best (highest MB/s) of the repeats; median also given",
            "upload_mb_per_s": size / upload_seconds / MB,
            "machine": describe_machine(),
            "load_average_1min": {"before": load_before[0], "after": load_after[0]},
            "elapsed_seconds": time.monotonic() - started,
            "measurements": [m.as_json() for m in measurements],
            "ratios": {
                m.name: {"vs_curl": m.best() / reference.best(), "vs_local_read": m.best() / ceiling.best()}
                for m in measurements
            },
        }
        if not args.no_save:
            RESULTS_DIR.mkdir(exist_ok=True)
            out = RESULTS_DIR / f"portal_get-{time.strftime('%Y%m%d-%H%M%S')}.json"
            out.write_text(json.dumps(report, indent=2) + "\n")
            print(f"\nresults written to {out.relative_to(REPO_ROOT)}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        status = main()
    except* KeyboardInterrupt:  # bare, or grouped when it lands inside a trio nursery
        print("interrupted; portal stopped and temporary files removed", file=sys.stderr)
        status = 130
    sys.exit(status)
