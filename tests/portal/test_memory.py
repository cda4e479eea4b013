"""Streaming keeps the portal's memory flat: a 2 GiB upload and download.

Neither side holds the file: the test generates the content while sending it
and hashes the download while receiving it, and the server must stage the
upload to disk and stream the download from it.  A sampler thread reads the
server's resident set size (``VmRSS``) throughout; its growth over the
warmed-up baseline must stay far below the file size.  This bounds memory,
not time.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import portal_http as ph
from tests.support.portal_process import running_portal

SIZE = 2 << 30
CHUNK = 1 << 20
MAX_GROWTH = 150 << 20


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


class RssSampler(threading.Thread):
    """The peak RSS of a process, sampled every few milliseconds until stopped."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak = rss_bytes(pid)
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
                self.samples += 1
            except (FileNotFoundError, ProcessLookupError):
                return

    def stop(self) -> int:
        self._stop_event.set()
        self.join(timeout=10)
        return self.peak


def content(size: int, digest: hashlib._Hash) -> Iterator[bytes]:
    """``size`` bytes of incompressible content, made as it is sent and hashed on the way."""
    rng = random.Random(99)
    blocks = [rng.randbytes(CHUNK) for _ in range(3)]
    for index in range(size // CHUNK):
        chunk = index.to_bytes(8, "big") + blocks[index % 3][8:]
        digest.update(chunk)
        yield chunk


@pytest.mark.slow
def test_two_gib_upload_and_download_keep_server_memory_flat(tmp_path: Path) -> None:
    try:
        _stream_both_ways(tmp_path / "data")
    finally:
        shutil.rmtree(tmp_path / "data", ignore_errors=True)  # pytest keeps tmp dirs; 2 GiB is too much to keep


def _stream_both_ways(data_dir: Path) -> None:
    path = "My Files/huge.bin"
    with running_portal(data_dir) as portal, ph.logged_in(portal) as http:
        pid = portal.process.pid
        # Warm up every code path once so that lazily built state is in the baseline.
        ph.put(http, portal, "My Files/warm.bin", b"w" * (4 * CHUNK))
        assert len(http.get(ph.webdav_url("My Files/warm.bin")).content) == 4 * CHUNK
        baseline = rss_bytes(pid)

        sampler = RssSampler(pid)
        sampler.start()
        try:
            sent = hashlib.sha256()
            started = time.monotonic()
            reply = ph.upload(http, portal, path, content(SIZE, sent), SIZE)
            assert reply.status_code == 200 and ph.error_of(reply) == (0, "OK"), reply.text
            uploaded = time.monotonic()

            received = hashlib.sha256()
            length = 0
            with http.stream("GET", ph.webdav_url(path)) as download:
                assert download.status_code == 200
                assert int(download.headers["content-length"]) == SIZE
                for chunk in download.iter_raw(CHUNK):
                    received.update(chunk)
                    length += len(chunk)
            downloaded = time.monotonic()
        finally:
            peak = sampler.stop()

        assert length == SIZE
        assert received.hexdigest() == sent.hexdigest()
        growth = peak - baseline
        print(
            f"\nupload {uploaded - started:.1f}s, download {downloaded - uploaded:.1f}s; server RSS baseline "
            f"{baseline >> 20} MiB, peak {peak >> 20} MiB (+{growth >> 20} MiB) over {sampler.samples} samples"
        )
        assert sampler.samples > 10, "the sampler did not run"
        assert growth < MAX_GROWTH, f"server RSS grew by {growth >> 20} MiB while streaming 2 GiB"
