"""A realistic sample tree with history, for ``--sample`` and ``portalfs demo``.

Each end user's ``My Files`` gets documents, pictures, nested project folders,
a few large files and a folder with thousands of entries, built in three
rounds with a snapshot after each of the first two, back-dated by days:

* round 1 (snapshot 3 days ago): the first drafts, and ``Old notes.txt``;
* round 2 (snapshot 1 day ago): drafts rewritten, ``Old notes.txt`` deleted
  (it stays in the recycle bin), ``Meeting minutes.txt`` added;
* round 3 (live): the report rewritten again.

So ``.snapshots`` shows older bytes of changed files and files that no longer
exist, and ``includeDeleted`` listings show deleted ones.  Content is
deterministic (seeded), so tests can predict it.  Seeding is idempotent: a
user whose ``My Files`` already holds ``Documents`` is left alone.
"""

from __future__ import annotations

import os
import random
import struct
import time
import zlib

from portal.store import Item, Store
from portal.store.database import transaction

DAY = 86400
MANY_FILES = 3000
LARGE_SIZES = (8 << 20, 48 << 20)


def seed(store: Store, *, many_files: int = MANY_FILES, large_sizes: tuple[int, ...] = LARGE_SIZES) -> None:
    for user in store.users():
        if user.is_admin:
            continue
        folder = store.cloud_folders(user.id)[0]
        root = store.item(folder.root_item_id)
        if store.child(root, "Documents") is not None:
            continue
        _seed_user(store, folder.id, root, user.friendly_name, many_files, large_sizes)
    os.sync()  # blobs were written without per-file fsync; make the whole seed durable once


def _seed_user(store: Store, folder_id: int, root: Item, owner: str, many: int, large: tuple[int, ...]) -> None:
    rng = random.Random(f"portalfs-sample-{owner}")
    now = time.time()
    with transaction(store.db):
        documents = store.make_folder(root, "Documents")
        photos = store.make_folder(root, "Photos")
        projects = store.make_folder(root, "Projects")
        apollo = store.make_folder(store.make_folder(projects, "Apollo"), "Design")
        many_folder = store.make_folder(root, "Many files")
        large_folder = store.make_folder(root, "Large files")

        _put(store, documents, "Report.txt", _text(rng, "Quarterly report, first draft", 40))
        _put(store, documents, "Budget.csv", _csv(rng, 50))
        _put(store, documents, "Old notes.txt", _text(rng, "Notes that will be deleted", 10))
        _put(store, documents, "q1 & q2 résumé #1.txt", _text(rng, "A name that needs encoding", 5))
        _put(store, apollo, "spec.md", _text(rng, "# Apollo design spec", 60))
        _put(store, apollo, "diagram.png", _png(rng, 64, 48))
        for index in range(12):
            _put(store, photos, f"IMG_{1000 + index}.png", _png(rng, 32 + index, 24 + index))
        for index in range(many):
            _put(store, many_folder, f"entry-{index:05d}.txt", f"entry {index} of {owner}\n".encode())
        for number, size in enumerate(large, 1):
            _put(store, large_folder, f"large-{number}.bin", rng.randbytes(size))
    store.take_snapshot(folder_id, when=now - 3 * DAY, force=True)

    with transaction(store.db):
        _put(store, documents, "Report.txt", _text(rng, "Quarterly report, second draft", 45))
        _put(store, apollo, "spec.md", _text(rng, "# Apollo design spec, revised", 70))
        store.delete(store.child(documents, "Old notes.txt"))
        _put(store, documents, "Meeting minutes.txt", _text(rng, "Minutes of the kickoff meeting", 15))
    store.take_snapshot(folder_id, when=now - DAY, force=True)

    with transaction(store.db):
        _put(store, documents, "Report.txt", _text(rng, "Quarterly report, final", 50))


def _put(store: Store, parent: Item, name: str, data: bytes) -> Item:
    blob = store.blobs.write_small(data, durable=False)
    return store.put_file(parent, name, blob, len(data))


_WORDS = (
    "portal cloud drive folder snapshot version upload share quarter budget design review "
    "customer revenue forecast storage network latency cache block kernel mount file"
).split()


def _text(rng: random.Random, title: str, lines: int) -> bytes:
    body = [title, "=" * len(title), ""]
    for _ in range(lines):
        body.append(" ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 14))).capitalize() + ".")
    return ("\n".join(body) + "\n").encode()


def _csv(rng: random.Random, rows: int) -> bytes:
    out = ["month,region,amount"]
    for index in range(rows):
        out.append(f"{1 + index % 12},{rng.choice(['north', 'south', 'east', 'west'])},{rng.randint(100, 99999)}")
    return ("\n".join(out) + "\n").encode()


def _png(rng: random.Random, width: int, height: int) -> bytes:
    """A real (viewable) PNG of random colour bands."""
    rows = []
    for _ in range(height):
        colour = bytes(rng.randrange(256) for _ in range(3))
        rows.append(b"\x00" + colour * width)
    raw = zlib.compress(b"".join(rows))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")
