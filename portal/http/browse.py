"""Browsing methods: ``fetchResources``, ``listSnapshots``, ``makeCollection``.

``fetchResources`` answers in pages of at most :data:`MAX_PAGE` children and
always carries its four fields (``root``, ``items``, ``hasMore``,
``errorType``), with ``root`` null when the path does not exist: the vendor
SDK reads every one of them.
"""

from __future__ import annotations

import time

from portal.http.asgi import HttpError, href
from portal.http.execute import Call, method
from portal.http.namespace import Namespace, Node
from portal.store import NotFound, PermissionDenied, StoreError
from portal.store.names import SNAPSHOTS_DIR
from wire import ctera_xml
from wire.ctera_xml import Obj, as_bool, as_int, as_obj, as_str, format_timestamp, obj

#: The largest page we hand out, whatever ``limit`` asks for.
MAX_PAGE = 1000


def resource_info(call: Call, node: Node) -> Obj:
    """The ``ResourceInfo`` object describing ``node``."""
    item = node.item
    is_folder = node.is_folder
    listing_snapshots = node.snapshots_of is not None
    info = obj(
        "ResourceInfo",
        name=node.name,
        href=href(call.context, node.path),
        isFolder=is_folder,
        isDeleted=bool(item and item.is_deleted and not listing_snapshots),
        size=0 if is_folder or item is None else item.size,
        lastmodified=format_timestamp(item.mtime) if item is not None else None,
        permalink=f"{call.request.scheme}://{call.request.host}{call.context}/?f={item.id}" if item else None,
        cloudFolderInfo=_cloud_folder_info(node),
        fileId=item.id if item is not None and not listing_snapshots else None,
        scope=node.scope,
        permission=node.permission,
    )
    if item is not None and not is_folder and "." in node.name.lstrip("."):
        info.fields["extension"] = node.name.rsplit(".", 1)[1]
    return info


def _cloud_folder_info(node: Node) -> Obj | None:
    folder = node.cloud_folder
    if folder is None:
        return None
    return obj(
        "CloudFolderInfo",
        uid=folder.id,
        name=folder.name,
        groupUid=folder.group_uid,
        passphraseProtected=False,
        ownerUid=folder.owner_id,
        ownerFriendlyName=folder.owner_friendly_name,
    )


def list_page(namespace: Namespace, node: Node, start: int, limit: int, include_deleted: bool) -> tuple[list[Node], bool]:
    """One page of a folder node's children and whether more follow."""
    if node.snapshots_of is not None:
        return _slice(namespace.snapshot_nodes(node), start, limit)
    if node.item is None:
        return _slice(namespace.virtual_children(node), start, limit)
    if not node.listable:
        return [], False
    # Through a share, the owner's recycle bin stays the owner's.
    include_deleted = include_deleted and node.share is None
    items, more = namespace.store.children(node.item, start=start, limit=limit, include_deleted=include_deleted)
    return namespace.children_of_item(node, items), more


def _slice(nodes: list[Node], start: int, limit: int) -> tuple[list[Node], bool]:
    return nodes[start : start + limit], start + limit < len(nodes)


@method("fetchResources")
def fetch_resources(call: Call, param: ctera_xml.Value) -> Obj:
    request = as_obj(param)
    if request is None:
        raise HttpError(400, "fetchResources needs a parameter object")
    start = max(0, as_int(request.get("start"), default=0) or 0)
    limit = min(MAX_PAGE, max(1, as_int(request.get("limit"), default=100) or 100))
    include_deleted = bool(as_bool(request.get("includeDeleted"), default=False))
    depth_text = (as_str(request.get("depth")) or "0").strip()
    path = call.path_of(request.get("root"))
    try:
        node = call.namespace.resolve(path, include_deleted=include_deleted)
    except NotFound:
        return _answer(None, [], False, None if depth_text == "0" else "DestinationNotExists")
    root_info = resource_info(call, node)
    if depth_text == "0":
        return _answer(root_info, None, False, None)
    if not node.is_folder:
        return _answer(root_info, [], False, None)
    if depth_text == "1":
        nodes, more = list_page(call.namespace, node, start, limit, include_deleted)
    elif depth_text.lower() == "infinity":
        filters = list(ctera_xml.iter_objs(request.get("searchFilters")))
        matches = [n for n in _walk(call.namespace, node, include_deleted) if _matches(n, filters)]
        nodes, more = _slice(matches, start, limit)
    else:
        raise HttpError(400, f"unsupported depth {depth_text!r}")
    return _answer(root_info, [resource_info(call, n) for n in nodes], more, None)


def _answer(root: Obj | None, items: list[Obj] | None, has_more: bool, error: str | None) -> Obj:
    return obj("FetchResourcesResp", root=root, items=items, hasMore=has_more, errorType=error)


def _walk(namespace: Namespace, node: Node, include_deleted: bool):
    start = 0
    while True:
        page, more = list_page(namespace, node, start, 500, include_deleted)
        for child in page:
            yield child
            if child.is_folder:
                yield from _walk(namespace, child, include_deleted)
        if not more:
            return
        start += len(page)


def _matches(node: Node, filters: list[Obj]) -> bool:
    for search in filters:
        field = as_str(search.get("field"))
        operator = as_str(search.get("operator")) or "contains"
        value = (as_str(search.get("value")) or "").casefold()
        name = node.name.casefold()
        subject = name.rsplit(".", 1)[1] if field == "extension" and "." in name else name
        if field not in ("name", "extension"):
            continue  # content search is not offered by this portal
        if operator == "eq" and subject != value:
            return False
        if operator == "neq" and subject == value:
            return False
        if operator == "contains" and value not in subject:
            return False
    return True


@method("listSnapshots")
def list_snapshots(call: Call, param: ctera_xml.Value) -> list[ctera_xml.Value]:
    path = call.path_of(param)
    try:
        node = call.namespace.resolve(path)
    except NotFound:
        raise HttpError(404, "Resource does not exist") from None
    folder = node.cloud_folder
    if folder is None or node.item is None or node.share is not None:
        return []  # no history through a share: only the current state is shared
    top = _cloud_folder_path(node)
    relative = list(node.path[len(top) :])
    if relative[:1] == [SNAPSHOTS_DIR]:
        relative = relative[2:]  # a path inside a snapshot: its versions are the live path's
    answers: list[ctera_xml.Value] = []
    snapshots_dir = call.namespace.child(call.namespace.resolve(top), SNAPSHOTS_DIR)
    assert snapshots_dir is not None
    for snapshot_node in call.namespace.snapshot_nodes(snapshots_dir):
        if _exists_below(call.namespace, snapshot_node, relative):
            answers.append(_snapshot_resp(call, (*top, SNAPSHOTS_DIR, snapshot_node.name), relative, snapshot_node, False))
    try:
        call.namespace.resolve([*top, *relative])
        answers.append(_snapshot_resp(call, top, relative, None, True))
    except NotFound:
        pass
    return answers


def _cloud_folder_path(node: Node) -> tuple[str, ...]:
    """The path of the cloud folder ``node`` lies in."""
    depth = 3 if node.path[:1] == ("Users",) and len(node.path) >= 3 else 1
    return node.path[:depth]


def _exists_below(namespace: Namespace, node: Node, relative: list[str]) -> bool:
    current: Node | None = node
    for name in relative:
        if current is None:
            return False
        current = namespace.child(current, name)
    return current is not None


def _snapshot_resp(call: Call, base: tuple[str, ...], relative: list[str], snapshot: Node | None, current: bool) -> Obj:
    taken = snapshot.snapshot.taken_at if snapshot is not None and snapshot.snapshot else None
    stamp = format_timestamp(taken) if taken is not None else format_timestamp(time.time())
    rel = href(call.context, relative)[len(call.context) + len("/webdav") :]
    return obj(
        "SnapshotResp",
        url=href(call.context, base),
        path=rel,
        startTimestamp=stamp,
        calculatedTimestamp=stamp,
        current=current,
    )


@method("makeCollection")
def make_collection(call: Call, param: ctera_xml.Value) -> str:
    request = as_obj(param)
    if request is None:
        raise HttpError(400, "makeCollection needs a parameter object")
    name = as_str(request.get("name")) or ""
    try:
        parent = call.namespace.resolve(call.path_of(request.get("parentPath")))
    except NotFound:
        return "DestinationNotExists"
    if not parent.writable:
        if call.namespace.child(parent, name) is not None:
            return "FileWithTheSameNameExist"
        return PermissionDenied.code
    assert parent.item is not None
    try:
        call.app.store.make_folder(parent.item, name)
    except StoreError as exc:
        return exc.code
    return "Ok"
