"""What the mount asks of the portal: listings only for browsing, each block once, nothing twice.

Counted on the portal's side, from its own request log (tests/support/request_log.py).
"""

from __future__ import annotations

import math
import os
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from portal.store import Store
from tests.support.mount_process import mounted
from tests.support.portal_process import PortalProcess, running_portal
from tests.support.portalfs_cli import status_json
from tests.support.request_log import RequestLog
from tests.support.store_fill import my_files, put

pytestmark = pytest.mark.fuse

BIG_FOLDER = 10_000
PROBES = (".hidden", ".xdg-volume-info", "autorun.inf", "desktop.ini", "Thumbs.db", ".DS_Store", ".Trash",
          ".Trash-0", ".directory")


@pytest.fixture(scope="module")
def big_folder_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalProcess]:
    """A portal whose alice has a folder of 10,000 files (built in the store before it starts)."""
    data = tmp_path_factory.mktemp("big") / "data"
    store = Store(data)
    try:
        root = my_files(store, "alice")
        store.db.execute("BEGIN IMMEDIATE")  # one transaction for the folder: a second, not minutes
        folder = store.make_folder(root, "Big")
        for index in range(BIG_FOLDER):
            put(store, folder, f"f{index:05d}.txt", f"file {index}\n".encode(), durable=False)
        store.db.execute("COMMIT")
        put(store, root, "cold.bin", os.urandom(16 << 20), durable=False)
    finally:
        store.close()
    os.sync()
    with running_portal(data) as portal:
        yield portal


def test_listing_ten_thousand_entries_costs_pages_and_no_content(big_folder_portal: PortalProcess, tmp_path: Path) -> None:
    log = RequestLog(big_folder_portal)
    with mounted(big_folder_portal, tmp_path / "mnt") as mount:
        log.mark()
        result = subprocess.run(["ls", "-l", str(mount.mountpoint / "Big")], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert len(result.stdout.splitlines()) == BIG_FOLDER + 1  # "total" line
        requests = log.since()
    assert log.content_bytes() == 0
    assert {r.method for r in requests} <= {"fetchResources"}, requests[:5]
    listing_pages = math.ceil(BIG_FOLDER / 1000)
    assert len(requests) <= listing_pages + 2  # the pages, plus at most a stat of the folder itself


def test_probe_names_cost_nothing_after_the_first_listing(sample_portal: PortalProcess, tmp_path: Path) -> None:
    log = RequestLog(sample_portal)
    with mounted(sample_portal, tmp_path / "mnt") as mount:
        documents = mount.mountpoint / "Documents"
        os.listdir(documents)
        log.mark()
        for name in PROBES:
            assert not (documents / name).exists()
            assert not (mount.mountpoint / name).exists()
        assert log.since() == []


def test_remount_rereads_from_the_disk_cache(sample_portal: PortalProcess, tmp_path: Path) -> None:
    log = RequestLog(sample_portal)
    cache = tmp_path / "cache"
    with mounted(sample_portal, tmp_path / "mnt", cache_dir=cache) as mount:
        first = (mount.mountpoint / "Large files" / "large-1.bin").read_bytes()
    assert (cache.stat().st_mode & 0o777) == 0o700
    log.mark()
    with mounted(sample_portal, tmp_path / "mnt", cache_dir=cache) as mount:
        again = (mount.mountpoint / "Large files" / "large-1.bin").read_bytes()
    assert again == first
    assert log.content_bytes() == 0


def test_concurrent_readers_of_a_cold_file_fetch_each_block_once(big_folder_portal: PortalProcess, tmp_path: Path) -> None:
    log = RequestLog(big_folder_portal)
    with mounted(big_folder_portal, tmp_path / "mnt") as mount:
        path = mount.mountpoint / "cold.bin"
        size = path.stat().st_size
        log.mark()
        results: list[bytes] = []

        def read() -> None:
            with open(path, "rb", buffering=0) as file:
                results.append(file.read())

        readers = [threading.Thread(target=read) for _ in range(6)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(timeout=120)
    assert len(results) == 6 and len({len(r) for r in results}) == 1 and len(results[0]) == size
    assert len(set(results)) == 1
    assert log.content_bytes() == size  # every byte came over the network exactly once


def test_reading_a_folder_of_small_files_costs_a_few_archives(big_folder_portal: PortalProcess, tmp_path: Path) -> None:
    """``grep -r`` / ``tar c`` through the mount: 10,000 files, about ten requests for their bytes."""
    log = RequestLog(big_folder_portal)
    with mounted(big_folder_portal, tmp_path / "mnt") as mount:
        log.mark()
        result = subprocess.run(["grep", "-r", "-c", "file", str(mount.mountpoint / "Big")],
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        requests = log.since()
    counts = dict(line.rsplit(":", 1) for line in result.stdout.splitlines())
    assert len(counts) == BIG_FOLDER and set(counts.values()) == {"1"}
    content = [r for r in requests if r.is_content]
    archives = [r for r in content if r.is_archive]
    assert len(content) <= 2 + math.ceil(BIG_FOLDER / 1000), [(r.verb, r.path) for r in content][:20]
    assert archives and all(r.status in (200, 206) for r in content)
    payload = sum(len(f"file {index}\n") for index in range(BIG_FOLDER))
    assert payload <= log.content_bytes() <= payload + 200 * BIG_FOLDER  # bytes plus ZIP headers, once


def test_requests_the_kernel_has_queued_are_read_without_waiting(big_folder_portal: PortalProcess,
                                                                 tmp_path: Path) -> None:
    """Eight readers keep requests queued: the daemon takes them without a trip through epoll
    (mount/request_loop.py), and every reader still gets its bytes."""
    with mounted(big_folder_portal, tmp_path / "mnt") as mount:
        paths = [mount.mountpoint / "Big" / f"f{index:05d}.txt" for index in range(2000)]
        with ThreadPoolExecutor(8) as readers:
            assert list(readers.map(Path.read_bytes, paths)) == [f"file {i}\n".encode() for i in range(2000)]
        assert status_json(mount.mountpoint)["fuse"]["requests_read_at_once"] > 0


def test_folder_prefetch_off_reads_each_file_on_its_own(big_folder_portal: PortalProcess, tmp_path: Path) -> None:
    log = RequestLog(big_folder_portal)
    with mounted(big_folder_portal, tmp_path / "mnt", options=["folder_prefetch=0"]) as mount:
        log.mark()
        for index in range(30):
            assert (mount.mountpoint / "Big" / f"f{index:05d}.txt").read_bytes() == f"file {index}\n".encode()
    content = [r for r in log.since() if r.is_content]  # after the unmount: every reply is logged by now
    assert len(content) == 30 and not any(r.is_archive for r in content)
