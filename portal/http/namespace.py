"""The file namespace a caller sees under ``{ctx}/webdav``, resolved to store items.

==========================================  ====================  ==========
path (below ``{ctx}/webdav``)                 what                  scope
==========================================  ====================  ==========
(empty), /ServicesPortal                     the caller's root     Root
``My Files``                                 a cloud folder        Personal
``My Files/a/b.txt``                         an item               InsideCloudFolder
``My Files/.snapshots``                      the snapshot list     InsideCloudFolder (read-only)
``My Files/.snapshots/2025-03-10T00:00:00``  the folder then       InsideCloudFolder (read-only)
(empty), /admin                              global root           Root
``Users``                                    all end users         UsersContainer
``Users/<friendly name>``                    one user's folders    UsersFoldersContainer
``Users/<friendly name>/My Files/…``         as above
``Shared With Me``                           shares received       SharedContainer (read-only)
``Shared With Me/<name>``                    a shared item         Shared
``Shared With Me/<name>/…``                  inside it             InsideCloudFolder
==========================================  ====================  ==========

Every path component is checked here: ``.``, ``..``, names holding ``/`` or
NUL never match anything, so no spelling can leave the caller's namespace.

*Shared With Me* appears in an end user's root only while something is
shared with them (an empty container would only be noise).  Everything below
it is reached through the share that granted it (:attr:`Node.share`): read
access only (writes through shares are not offered), no recycle bin, no
``.snapshots``, and the share's access mode decides whether content may be
listed (not ``UploadOnly``) and downloaded (not ``PreviewOnly`` either).
Two shared items of the same name are told apart by their owner's name:
``Report.docx (Alice Smith)``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from portal.http.sessions import ADMIN
from portal.store import CloudFolder, Item, NotFound, Snapshot, Store, User
from portal.store import shares as _shares
from portal.store.names import SNAPSHOTS_DIR
from portal.store.shares import Share

USERS_DIR = "Users"
SHARED_DIR = "Shared With Me"

ROOT = "Root"
USERS_CONTAINER = "UsersContainer"
USERS_FOLDERS_CONTAINER = "UsersFoldersContainer"
PERSONAL = "Personal"
INSIDE = "InsideCloudFolder"
SHARED_CONTAINER = "SharedContainer"
SHARED = "Shared"


@dataclass(frozen=True)
class Node:
    """A resolved path: a store item, or a virtual folder above or beside the items."""

    path: tuple[str, ...]
    scope: str
    item: Item | None = None
    cloud_folder: CloudFolder | None = None
    #: for ``Users/<name>``
    owner: User | None = None
    #: set on the ``.snapshots`` folder itself (listing it lists snapshots)
    snapshots_of: CloudFolder | None = None
    snapshot: Snapshot | None = None
    #: the share through which this node is reached (None: the caller's own or an admin's view)
    share: Share | None = None

    @property
    def is_folder(self) -> bool:
        return self.item is None or self.item.is_folder

    @property
    def writable(self) -> bool:
        """Can children be created here / can this be changed?"""
        return (
            self.item is not None and self.item.snapshot_id is None and self.snapshots_of is None and self.share is None
        )

    @property
    def permission(self) -> str:
        """The effective access a client is told (``ResourceInfo.permission``).

        Through a share it is what this portal enforces: a ``ReadWrite`` share
        reads as ``ReadOnly`` because writes through shares are not offered.
        """
        if self.share is not None and self.share.access in (_shares.PREVIEW_ONLY, _shares.UPLOAD_ONLY):
            return self.share.access
        return _shares.READ_WRITE if self.writable else _shares.READ_ONLY

    @property
    def listable(self) -> bool:
        return self.share is None or self.share.access != _shares.UPLOAD_ONLY

    @property
    def readable(self) -> bool:
        """May content be downloaded (file GET, ZIP)?"""
        return self.share is None or self.share.access in (_shares.READ_ONLY, _shares.READ_WRITE)

    @property
    def name(self) -> str:
        return self.path[-1] if self.path else ""


def snapshot_label(snapshot: Snapshot) -> str:
    """A snapshot's name in the namespace: its UTC time, ``YYYY-MM-DDTHH:MM:SS``."""
    return dt.datetime.fromtimestamp(snapshot.taken_at, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


class Namespace:
    """One caller's view of the store."""

    def __init__(self, store: Store, user: User, context: str) -> None:
        self.store = store
        self.user = user
        self.context = context

    @property
    def is_admin_view(self) -> bool:
        return self.context == ADMIN

    def root(self) -> Node:
        return Node((), ROOT)

    def resolve(self, path: list[str] | tuple[str, ...], *, include_deleted: bool = False,
                walked: dict[tuple[str, ...], Node] | None = None) -> Node:
        """The node at ``path``; :class:`NotFound` if there is none.

        With ``include_deleted`` any component may be a deleted item (a live
        one of the same name wins): a listing with deleted items shows a
        deleted folder's deleted contents, so their paths must resolve too,
        or a client could not walk or restore what it was just shown.

        ``walked`` saves the walk to each folder for the next paths of one
        request (a ZIP of a hundred files of one folder resolves that folder
        once, not a hundred times); the caller keeps one per request and
        per ``include_deleted``.
        """
        start = tuple(path[:-1])
        node = walked.get(start) if walked is not None else None
        if node is None:
            node, start = self.root(), ()
        for depth in range(len(start), len(path)):
            name = path[depth]
            if not name or name in (".", "..") or "/" in name or "\0" in name:
                raise NotFound(f"no such path component {name!r}")
            found = self.child(node, name, include_deleted=include_deleted)
            if found is None:
                raise NotFound("/".join(path))
            node = found
            if walked is not None and depth < len(path) - 1:
                walked[tuple(path[:depth + 1])] = node
        return node

    def child(self, parent: Node, name: str, *, include_deleted: bool = False) -> Node | None:
        path = (*parent.path, name)
        if parent.item is not None:
            if parent.snapshots_of is not None:
                return self._snapshot_by_label(parent, name)
            shared = parent.share is not None
            if not shared and parent.item.parent_id is None and parent.item.snapshot_id is None and name == SNAPSHOTS_DIR:
                return Node(path, INSIDE, item=parent.item, cloud_folder=parent.cloud_folder, snapshots_of=parent.cloud_folder)
            if shared and not parent.listable:
                return None
            item = self.store.child(parent.item, name, include_deleted=include_deleted and not shared)
            if item is None:
                return None
            return Node(path, INSIDE, item=item, cloud_folder=parent.cloud_folder, snapshot=parent.snapshot,
                        share=parent.share)
        for candidate in self.virtual_children(parent):
            if self.store.name_key(candidate.name) == self.store.name_key(name):
                return candidate
        return None

    def virtual_children(self, parent: Node) -> list[Node]:
        """Children of a folder above the cloud folders (root and containers)."""
        if parent.scope == ROOT and self.is_admin_view:
            return [Node((USERS_DIR,), USERS_CONTAINER)]
        if parent.scope == ROOT:
            nodes = [self._cloud_folder_node((), folder) for folder in self.store.cloud_folders(self.user.id)]
            if _shares.shared_with(self.store, self.user.id):
                nodes.append(Node((SHARED_DIR,), SHARED_CONTAINER))
            return nodes
        if parent.scope == SHARED_CONTAINER and not self.is_admin_view:
            return self._shared_with_me(parent)
        if parent.scope == USERS_CONTAINER:
            return [
                Node((*parent.path, user.friendly_name), USERS_FOLDERS_CONTAINER, owner=user)
                for user in self.store.users()
                if not user.is_admin
            ]
        if parent.scope == USERS_FOLDERS_CONTAINER and parent.owner is not None:
            return [self._cloud_folder_node(parent.path, f) for f in self.store.cloud_folders(parent.owner.id)]
        return []

    def _shared_with_me(self, container: Node) -> list[Node]:
        """One node per share in force for the caller, under a name unique in the container."""
        nodes: list[Node] = []
        taken: set[str] = set()
        for share, item in _shares.shared_with(self.store, self.user.id):
            folder = self.store.cloud_folder(item.cloud_folder_id)
            name = item.name
            if self.store.name_key(name) in taken:
                stem, dot, extension = name.rpartition(".") if not item.is_folder and "." in name[1:] else (name, "", "")
                base = f"{stem} ({folder.owner_friendly_name})"
                name, counter = f"{base}{dot}{extension}", 2
                while self.store.name_key(name) in taken:
                    name, counter = f"{base[:-1]} {counter}){dot}{extension}", counter + 1
            taken.add(self.store.name_key(name))
            nodes.append(Node((*container.path, name), SHARED, item=item, cloud_folder=folder, share=share))
        return nodes

    def _cloud_folder_node(self, prefix: tuple[str, ...], folder: CloudFolder) -> Node:
        return Node((*prefix, folder.name), PERSONAL, item=self.store.item(folder.root_item_id), cloud_folder=folder)

    def snapshot_nodes(self, snapshots_dir: Node) -> list[Node]:
        folder = snapshots_dir.snapshots_of
        assert folder is not None
        return [self._snapshot_node(snapshots_dir, s) for s in self.store.snapshots(folder.id)]

    def _snapshot_node(self, snapshots_dir: Node, snapshot: Snapshot) -> Node:
        return Node(
            (*snapshots_dir.path, snapshot_label(snapshot)),
            INSIDE,
            item=self.store.snapshot_root(snapshot),
            cloud_folder=snapshots_dir.cloud_folder,
            snapshot=snapshot,
        )

    def _snapshot_by_label(self, snapshots_dir: Node, label: str) -> Node | None:
        for node in self.snapshot_nodes(snapshots_dir):
            if node.name == label:
                return node
        return None

    def children_of_item(self, parent: Node, items: list[Item]) -> list[Node]:
        return [
            Node((*parent.path, item.name), INSIDE, item=item, cloud_folder=parent.cloud_folder, snapshot=parent.snapshot,
                 share=parent.share)
            for item in items
        ]

    def node_of_item(self, item: Item) -> Node:
        """The node of a live or deleted store item, with its path from this root."""
        folder = self.store.cloud_folder(item.cloud_folder_id)
        names = self.store.path_of(item)
        prefix: tuple[str, ...] = (USERS_DIR, folder.owner_friendly_name) if self.is_admin_view else ()
        scope = PERSONAL if item.parent_id is None else INSIDE
        return Node((*prefix, *names), scope, item=item, cloud_folder=folder)

    def can_see(self, folder: CloudFolder) -> bool:
        return self.is_admin_view or folder.owner_id == self.user.id
