"""The inode table: which kernel inode stands for which remote item.

The kernel identifies files by inode number; the portal by path (and a stable
``fileId``).  The rules:

* One inode per remote **identity** (``RemoteEntry.object_id``, which follows a
  file across renames), for as long as the kernel knows it — i.e. while its
  lookup count is above zero or a handle is open.  Inode numbers come from a
  counter and are never reused within a mount, so a recycled number can never
  alias another file in a kernel cache.
* Snapshot items get their own identities (the time of the snapshot is part
  of the key), hence inode numbers distinct from the live tree.
* A node stores its parent inode and name, not its path: a path is computed
  by walking up to an *anchor* (the mount root, or a snapshot's root, whose
  remote path is known), so renaming a folder touches one node.
* ``lookups`` follows the kernel's count exactly: +1 for each entry the kernel
  receives (lookup, readdirplus), −n for each ``forget``.  A node whose count
  reaches zero and which has no open handle is dropped.

Single-threaded by design: every method runs on the trio thread between
checkpoints, so no lock guards these dictionaries.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Hashable
from dataclasses import dataclass, field

from vfs.backends.base import Path, RemoteEntry, SnapshotRef

ROOT_INODE = 1


class Kind(enum.Enum):
    ROOT = "root"  # the mount root (a remote folder)
    LIVE = "live"  # an item of the live tree
    SNAPSHOTS = "snapshots"  # a ``.snapshots`` folder (virtual): one entry per snapshot
    SNAPSHOT_ROOT = "snapshot-root"  # ``.snapshots/@GMT-…``: a folder as it was then
    SNAPSHOT_ITEM = "snapshot-item"  # anything below a snapshot root

    @property
    def read_only(self) -> bool:
        return self not in (Kind.ROOT, Kind.LIVE)


@dataclass(eq=False)
class Node:
    """What the filesystem knows about one inode."""

    inode: int
    kind: Kind
    parent: int
    name: str
    key: Hashable
    entry: RemoteEntry | None  # None only for SNAPSHOTS folders
    #: remote path for anchors (ROOT, SNAPSHOT_ROOT); None: parent's path + name
    anchor: Path | None = None
    #: the snapshot this node belongs to (SNAPSHOT_ROOT, SNAPSHOT_ITEM)
    snapshot: SnapshotRef | None = None
    lookups: int = 0
    open_handles: int = 0
    #: the version the kernel's page cache holds for this inode (set at open)
    cached_version: str | None = None
    #: when ``entry`` was last confirmed by the portal (trio clock)
    confirmed_at: float = field(default=0.0)
    #: unlinked or replaced: no name, no identity, alive only while the kernel holds it
    detached: bool = False
    #: a staged file deleted while open: its record is discarded when the last handle closes
    orphan_record: int | None = None
    #: a portal file unlinked while open: deleted on the portal at its last close
    pending_delete: Path | None = None

    @property
    def is_dir(self) -> bool:
        return self.entry is None or self.entry.is_dir


class InodeTable:
    """Inode numbers ↔ nodes ↔ remote identities."""

    def __init__(self, root_path: Path, root_entry: RemoteEntry) -> None:
        self._numbers = itertools.count(ROOT_INODE + 1)
        self._nodes: dict[int, Node] = {}
        self._by_key: dict[Hashable, int] = {}
        self._by_name: dict[tuple[int, str], int] = {}
        self.root = Node(ROOT_INODE, Kind.ROOT, ROOT_INODE, "", ("root",), root_entry, anchor=root_path, lookups=1)
        self._nodes[ROOT_INODE] = self.root
        self._by_key[self.root.key] = ROOT_INODE

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, inode: int) -> Node | None:
        return self._nodes.get(inode)

    def learn(
        self,
        parent: Node,
        name: str,
        kind: Kind,
        key: Hashable,
        entry: RemoteEntry | None,
        *,
        anchor: Path | None = None,
        snapshot: SnapshotRef | None = None,
        now: float = 0.0,
    ) -> Node:
        """The node for ``key`` under ``parent``/``name``, created if the kernel does not know it.

        An existing node is updated in place (a rename seen in a listing moves
        it; a new version replaces its entry) and keeps its inode number.
        """
        inode = self._by_key.get(key)
        if inode is not None:
            node = self._nodes[inode]
            self._unname(node)
            node.parent, node.name = parent.inode, name
            self._by_name[(parent.inode, name)] = node.inode
            if entry is not None:
                node.entry = entry
                node.confirmed_at = now
            if anchor is not None:
                node.anchor = anchor
            return node
        node = Node(
            next(self._numbers), kind, parent.inode, name, key, entry, anchor=anchor, snapshot=snapshot,
            confirmed_at=now,
        )
        self._nodes[node.inode] = node
        self._by_key[key] = node.inode
        self._by_name[(parent.inode, name)] = node.inode
        return node

    def by_key(self, key: Hashable) -> Node | None:
        inode = self._by_key.get(key)
        return self._nodes.get(inode) if inode is not None else None

    def rekey(self, node: Node, key: Hashable) -> None:
        """``node`` is now known by ``key`` (a new file got its portal identity).

        A node that held ``key`` before is detached: the identity moved on to
        this one (e.g. a temp file saved over the original).
        """
        previous = self.by_key(key)
        if previous is not None and previous is not node:
            self.detach(previous)
        if self._by_key.get(node.key) == node.inode:
            del self._by_key[node.key]
        node.key = key
        self._by_key[key] = node.inode

    def detach(self, node: Node) -> None:
        """Cut ``node`` off from its name and identity (unlinked, or replaced by a rename).

        The kernel may still hold it (an open file, a cached dentry): it stays
        until forgotten, but no listing or lookup will find it again.
        """
        if node is self.root:
            return
        self._unname(node)
        if self._by_key.get(node.key) == node.inode:
            del self._by_key[node.key]
        node.detached = True
        self.drop_if_unused(node)

    def child(self, parent: Node, name: str) -> Node | None:
        """The node the kernel knows as ``name`` in ``parent`` (what we last saw there)."""
        inode = self._by_name.get((parent.inode, name))
        return self._nodes.get(inode) if inode is not None else None

    def _unname(self, node: Node) -> None:
        if self._by_name.get((node.parent, node.name)) == node.inode:
            del self._by_name[(node.parent, node.name)]

    def remember(self, node: Node, count: int = 1) -> None:
        """The kernel received ``count`` more references to ``node``."""
        node.lookups += count

    def forget(self, inode: int, count: int) -> None:
        """The kernel dropped ``count`` references (never raises: FUSE forget has no reply)."""
        node = self._nodes.get(inode)
        if node is None or node is self.root:
            return
        node.lookups = max(0, node.lookups - count)
        self.drop_if_unused(node)

    def drop_if_unused(self, node: Node) -> None:
        if node is self.root or node.lookups > 0 or node.open_handles > 0:
            return
        if self._nodes.get(node.inode) is node:
            del self._nodes[node.inode]
            if self._by_key.get(node.key) == node.inode:
                del self._by_key[node.key]
            self._unname(node)

    def remote_path(self, node: Node) -> Path:
        """The node's path in the portal's namespace."""
        names: list[str] = []
        current = node
        while current.anchor is None:
            if current.kind is not Kind.SNAPSHOTS:
                names.append(current.name)
            parent = self._nodes.get(current.parent)
            if parent is None:
                raise KeyError(f"inode {current.inode} lost its parent {current.parent}")
            current = parent
        return (*current.anchor, *reversed(names))
