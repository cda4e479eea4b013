"""A kill -9 of the portal never loses a completed upload nor shows a partial one.

The store's promise (``portal/store/blobs.py``): content is staged under
``tmp/``, fsynced and renamed into ``blobs/`` before the database transaction
that references it commits, and a restart removes leftovers.  These tests hold
the real server to it: SIGKILL in the middle of a slowly streamed upload, and
right after one completes, then a new server on the same data directory.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import portal_http as ph
from tests.support.portal_process import PortalProcess, blob_names, running_portal
from wire import ctera_xml

CHUNK = 1 << 20
BIG = 64 << 20


def _file_id(http: httpx.Client, path: str) -> str | None:
    info = ph.stat(http, path)
    return ctera_xml.as_str(info.get("fileId")) if info is not None else None


def _staged(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "tmp").iterdir() if p.stat().st_size > 0]


def _killing_body(portal: PortalProcess, total: int) -> Iterator[bytes]:
    """Upload content that SIGKILLs the server once it has staged part of it, then keeps coming slowly."""
    sent = 0
    killed = False
    while sent < total:
        yield b"k" * CHUNK
        sent += CHUNK
        if not killed and sent >= 8 * CHUNK:
            deadline = time.monotonic() + 20
            while not _staged(portal.data_dir):
                assert time.monotonic() < deadline, "the server never staged the upload"
                time.sleep(0.01)
            portal.kill()
            killed = True
        if killed:
            time.sleep(0.01)


@pytest.mark.parametrize("existing", [True, False], ids=["new-version", "new-file"])
def test_kill_during_upload_keeps_the_previous_state(tmp_path: Path, existing: bool) -> None:
    data_dir = tmp_path / "data"
    path = "My Files/Docs/report.bin"
    old = random.Random(1).randbytes(3 * CHUNK + 17)
    with running_portal(data_dir) as portal, ph.logged_in(portal) as http:
        assert ph.mkdir(http, "My Files", "Docs") == "Ok"
        ph.put(http, portal, "My Files/Docs/other.txt", b"unrelated")
        if existing:
            ph.put(http, portal, path, old)
        old_id = _file_id(http, path)
        old_etag = http.head(ph.webdav_url(path)).headers.get("etag")
        with pytest.raises(httpx.TransportError):
            ph.upload(http, portal, path, _killing_body(portal, BIG), BIG)
        assert portal.process.poll() is not None, "the server should have been killed"
        assert _staged(data_dir), "the kill should have caught a staged upload"

    with running_portal(data_dir) as portal, ph.logged_in(portal) as http:
        assert list((data_dir / "tmp").iterdir()) == [], "restart must remove staged leftovers"
        assert ph.list_names(http, "My Files/Docs") == (["other.txt", "report.bin"] if existing else ["other.txt"])
        reply = http.get(ph.webdav_url(path))
        if existing:
            assert reply.status_code == 200 and reply.content == old
            assert reply.headers["etag"] == old_etag
            assert _file_id(http, path) == old_id
            info = ph.stat(http, path)
            assert info is not None and ctera_xml.as_int(info.get("size")) == len(old)
        else:
            assert reply.status_code == 404
        assert http.get(ph.webdav_url("My Files/Docs/other.txt")).content == b"unrelated"
        assert len(blob_names(data_dir)) == (2 if existing else 1), "no unreferenced blobs after recovery"
        # The portal works normally afterwards, and the upload can simply be retried.
        new = random.Random(2).randbytes(5 * CHUNK)
        ph.put(http, portal, path, new)
        assert http.get(ph.webdav_url(path)).content == new
        if existing:
            assert _file_id(http, path) == old_id


def test_kill_right_after_an_upload_keeps_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    path = "My Files/kept.bin"
    first = random.Random(3).randbytes(2 * CHUNK)
    second = random.Random(4).randbytes(2 * CHUNK + 1)
    with running_portal(data_dir) as portal, ph.logged_in(portal) as http:
        ph.put(http, portal, path, first)
        file_id = _file_id(http, path)
        first_etag = http.head(ph.webdav_url(path)).headers["etag"]
        ph.put(http, portal, path, second)
        assert ph.mkdir(http, "My Files", "made just before") == "Ok"
        portal.kill()

    with running_portal(data_dir) as portal, ph.logged_in(portal) as http:
        reply = http.get(ph.webdav_url(path))
        assert reply.status_code == 200 and reply.content == second
        assert reply.headers["etag"] != first_etag
        assert _file_id(http, path) == file_id
        assert sorted(ph.list_names(http, "My Files")) == ["kept.bin", "made just before"]
        assert list((data_dir / "tmp").iterdir()) == []


def test_repeated_kills_under_a_stream_of_uploads(tmp_path: Path) -> None:
    """Kill at arbitrary moments while small uploads follow one another: whatever a
    client was told succeeded is there after the restart, byte for byte; the one
    upload in flight at the kill is either wholly there or not at all."""
    data_dir = tmp_path / "data"
    acknowledged: dict[str, bytes] = {}
    in_flight: tuple[str, bytes] | None = None
    rng = random.Random(5)
    for round_number in range(4):
        with running_portal(data_dir) as portal, ph.logged_in(portal) as http:
            if in_flight is not None:
                path, content = in_flight
                reply = http.get(ph.webdav_url(path))
                found = reply.content if reply.status_code == 200 else None
                assert found == content or found == acknowledged.get(path), f"{path}: a partial or lost upload"
                if found is not None:
                    acknowledged[path] = found
            for path, content in acknowledged.items():
                assert http.get(ph.webdav_url(path)).content == content, path
            assert list((data_dir / "tmp").iterdir()) == []
            if round_number == 3:
                break
            kill_after = rng.uniform(0.2, 0.8)
            started = time.monotonic()
            index = 0
            while True:
                path = f"My Files/r{round_number}-{index % 5}.bin"
                content = rng.randbytes(rng.randrange(1, 256 << 10))
                if time.monotonic() - started > kill_after:
                    portal.kill()
                in_flight = (path, content)
                try:
                    ph.put(http, portal, path, content)
                except httpx.TransportError:
                    break
                acknowledged[path] = content
                index += 1
            assert index > 0, "nothing was uploaded before the kill"
