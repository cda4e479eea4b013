"""A file of more than 1 GiB through the mount: whole-file hash and reads at offsets.

The content is generated chunk by chunk from a seed, never held whole: the
test uploads it with a streamed WebDAV PUT, hashes it while generating, and
can regenerate any chunk to check a read at any offset.
"""

from __future__ import annotations

import hashlib
import random
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.mount_process import mounted
from tests.support.portal_process import PortalProcess

pytestmark = [pytest.mark.fuse, pytest.mark.slow]

CHUNK = 1 << 20
CHUNKS = 1024 + 3  # a little over 1 GiB, so the last block is a partial one
TAIL = 12345


def chunk(index: int) -> bytes:
    data = random.Random(f"large-{index}").randbytes(CHUNK)
    return data[:TAIL] if index == CHUNKS - 1 else data


def generate() -> Iterator[bytes]:
    for index in range(CHUNKS):
        yield chunk(index)


def expected_range(offset: int, length: int) -> bytes:
    out = bytearray()
    while length > 0:
        index, within = divmod(offset, CHUNK)
        piece = chunk(index)[within : within + length]
        if not piece:
            break
        out += piece
        offset += len(piece)
        length -= len(piece)
    return bytes(out)


def test_gigabyte_file_reads_back_exactly(portal: PortalProcess, tmp_path: Path) -> None:
    expected = hashlib.sha256()
    for piece in generate():
        expected.update(piece)
    size = (CHUNKS - 1) * CHUNK + TAIL
    with httpx.Client(auth=("alice", portal.users["alice"]), timeout=600,
                      verify=ssl.create_default_context(cafile=str(portal.cert))) as http:
        reply = http.put(f"{portal.url}/ServicesPortal/webdav/My%20Files/huge.bin", content=generate())
        assert reply.status_code in (200, 201, 204), reply.text

    with mounted(portal, tmp_path / "mnt") as mount:
        path = mount.mountpoint / "huge.bin"
        assert path.stat().st_size == size
        sha = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, timeout=600, check=True)
        assert sha.stdout.split()[0] == expected.hexdigest()
        rng = random.Random(3)
        for offset in [0, CHUNK - 1, size - 1, size - TAIL - 7, *(rng.randrange(size) for _ in range(20))]:
            length = rng.choice([1, 4096, 65536, 3 * CHUNK + 5])
            result = subprocess.run(
                ["dd", f"if={path}", "iflag=skip_bytes,count_bytes", f"skip={offset}", f"count={length}", "status=none"],
                capture_output=True, timeout=120, check=True,
            )
            assert result.stdout == expected_range(offset, length), f"at offset {offset}"
