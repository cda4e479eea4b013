"""A folder's ZIP when its small files are read in runs.

The portal reads a folder's small files (up to ``SMALL_FILE``) in runs of up
to ``SMALL_RUN`` in one trip to a worker thread, and looks their blobs up in
one query.  A run ends early at a large file or a subfolder, which are
written in between.  The archive must still hold every file once, under its
own name, with its own bytes, in listing order: a run whose contents were
paired with the wrong names, or a large file written before the run that
preceded it, would still be a valid ZIP.  The unmodified SDK downloads it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from cterasdk import ServicesPortal

from portal.http.archive import SMALL_FILE, SMALL_RUN
from portal.store import Store
from tests.support.portal_process import running_portal
from tests.support.sdk import user_session
from tests.support.store_fill import my_files, put

FOLDER = "Mixed"


def small(index: int) -> bytes:
    return f"small file {index}\n".encode() * (index % 7 + 1)


def build(data_dir: Path) -> list[tuple[str, bytes | None]]:
    """alice's ``My Files/Mixed``: more small files than two runs, a large file after the first
    run's end and before the second's, a subfolder (with files of its own) further on, and an
    empty file.  Returns the archive's expected members in order (None: a folder)."""
    large = bytes(range(256)) * (SMALL_FILE // 256 + 3)
    store = Store(data_dir)
    try:
        folder = store.make_folder(my_files(store, "alice"), FOLDER)
        expected: list[tuple[str, bytes | None]] = []
        for index in range(2 * SMALL_RUN + 40):
            name = f"n{index:04d}"
            if index == SMALL_RUN + 5:
                content: bytes | None = large
            elif index == SMALL_RUN + 60:
                sub = store.make_folder(folder, name)
                expected.append((f"{name}/", None))
                for inner in range(3):
                    data = small(1000 + inner)
                    put(store, sub, f"inner{inner}", data, durable=False)
                    expected.append((f"{name}/inner{inner}", data))
                continue
            elif index == SMALL_RUN + 61:
                content = b""
            else:
                content = small(index)
            put(store, folder, name, content, durable=False)
            expected.append((name, content))
        return expected
    finally:
        store.close()


def test_runs_of_small_files_keep_names_bytes_and_order(tmp_path: Path) -> None:
    expected = build(tmp_path / "data")
    with running_portal(tmp_path / "data") as portal, user_session(portal, "alice") as alice:
        archive = download(alice, tmp_path / "out")
    with zipfile.ZipFile(archive) as opened:
        assert opened.testzip() is None
        found = [(info.filename, None if info.is_dir() else opened.read(info)) for info in opened.infolist()]
    assert [name for name, _ in found] == [name for name, _ in expected]
    assert found == expected


def download(client: ServicesPortal, target: Path) -> Path:
    target.mkdir()
    return Path(client.files.download(f"My Files/{FOLDER}", destination=f"{target}/"))
