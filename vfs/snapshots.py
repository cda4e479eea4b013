"""Names of the ``.snapshots`` view.

Every directory of the mount has a hidden ``.snapshots`` folder (resolvable by
name, listed only at the mount root) holding one read-only folder per portal
snapshot, named ``@GMT-YYYY.MM.DD-HH.MM.SS`` in UTC — the form Samba's
``shadow_copy2`` module expects, so a Samba re-export of the mount offers
Windows "Previous Versions".
"""

from __future__ import annotations

import datetime as dt

from vfs.backends.base import SnapshotRef

SNAPSHOTS_DIR = ".snapshots"
_FORMAT = "@GMT-%Y.%m.%d-%H.%M.%S"


def label(snapshot: SnapshotRef) -> str:
    return dt.datetime.fromtimestamp(snapshot.taken_at, dt.timezone.utc).strftime(_FORMAT)


def labelled(snapshots: list[SnapshotRef]) -> dict[str, SnapshotRef]:
    """Past snapshots by label (the current version is the live tree, not a snapshot).

    Two snapshots within one second would share a label; the later one wins.
    """
    return {label(s): s for s in sorted(snapshots, key=lambda s: s.taken_at) if not s.current}
