"""Sharing methods: ``createShare`` (public links), ``listShares``,
``shareResource`` and ``searchCollaborationMembers`` (spec §4.9).

What may be shared is what the caller may change: an item of their own (or,
for an administrator, of the user whose folder it is, who becomes the share's
owner).  Roots, containers, snapshots and items reached through someone
else's share cannot be shared (no re-sharing here).  A path that does not
exist is refused with the exact message the vendor SDK tests for,
``Resource does not exist``.

Public links and collaboration recipients are separate lists, as the
protocol keeps them: ``shareResource`` (and so ``unshare``) never touches a
public link, and ``listShares`` reports recipients only.

Recipients are local users (``localUser``, found by their user name) and
external e-mail addresses (``external``, kept as bookkeeping: this portal
sends no mail, so they get no usable invitation).  There are no groups or
directory accounts, so searches for them find nothing.
"""

from __future__ import annotations

from portal.http.asgi import HttpError
from portal.http.execute import Call, method
from portal.http.namespace import Node
from portal.store import NotFound, User
from portal.store import shares as _shares
from portal.store.shares import Recipient, Settings, Share
from wire import ctera_xml
from wire.ctera_xml import Obj, as_bool, as_int, as_obj, as_str, obj

LINK_ACCESS = (_shares.READ_WRITE, _shares.READ_ONLY, _shares.PREVIEW_ONLY, _shares.UPLOAD_ONLY)
PUBLIC, EMAIL = "publicLink", "email"
#: Collaborator types this portal knows of; the others (groups, AD) have no members here.
_KNOWN_TYPES = (_shares.LOCAL_USER, _shares.EXTERNAL)
_MAX_SEARCH = 100


def public_link_url(call: Call, invite: str) -> str:
    """The URL a public link is opened with (the vendor SDK parses exactly this form)."""
    return f"{call.request.scheme}://{call.request.host}/invitations/?share={invite}"


def _shareable(call: Call, href: ctera_xml.Value) -> Node:
    try:
        node = call.namespace.resolve(call.path_of(href))
    except NotFound:
        raise HttpError(404, "Resource does not exist") from None
    if node.item is None or node.cloud_folder is None or not node.writable:
        raise HttpError(403, f"{'/'.join(node.path) or 'the root'} cannot be shared")
    return node


def _owner(node: Node) -> int:
    assert node.cloud_folder is not None
    return node.cloud_folder.owner_id


def _date(text: str | None) -> str | None:
    try:
        return _shares.check_date(text)
    except ValueError:
        raise HttpError(400, f"expiration {text!r} is not a date (YYYY-MM-DD)") from None


# ------------------------------------------------------------- public links


@method("createShare")
def create_share(call: Call, param: ctera_xml.Value) -> Obj:
    request = as_obj(param)
    config = as_obj(request.get("share")) if request is not None else None
    if request is None or config is None:
        raise HttpError(400, "createShare needs {url, share}")
    access = as_str(config.get("accessMode"))
    if access not in LINK_ACCESS:
        raise HttpError(400, f"unsupported access mode {access!r} for a public link")
    protection = as_str(config.get("protectionLevel")) or PUBLIC
    if protection != PUBLIC:
        raise HttpError(400, f"unsupported protection level {protection!r}: only public links are offered")
    # A date already past is accepted: the link is simply no longer valid.
    expires = _date(as_str(config.get("expiration")))
    node = _shareable(call, request.get("url"))
    assert node.item is not None
    link = _shares.create_link(call.app.store, node.item, _owner(node), access, expires)
    assert link.invite is not None
    return obj(
        "PublicLinkInfo",
        publicLink=public_link_url(call, link.invite),
        accessMode=link.access,
        expiration=link.expires,
        protectionLevel=PUBLIC,
    )


# ------------------------------------------------------------ collaboration


def _collaborator(call: Call, share: Share) -> Obj:
    if share.invitee_user_id is not None:
        user = call.app.store.user_by_id(share.invitee_user_id)
        return _user_collaborator(user)
    return obj("Collaborator", type=share.invitee_type, name=None, domain=None, email=share.invitee_email)


def _user_collaborator(user: User) -> Obj:
    return obj(
        "Collaborator",
        type=_shares.LOCAL_USER,
        name=user.name,
        domain=None,
        email=None,
        firstName=user.friendly_name,
        lastName=None,
        uid=user.id,
    )


def _share_info(call: Call, node: Node, url: str | None) -> Obj:
    assert node.item is not None
    store = call.app.store
    settings = _shares.settings(store, node.item.id) or _default_settings(node)
    configs = [
        obj(
            "ShareConfig",
            accessMode=share.access,
            expiration=share.expires,
            protectionLevel=share.protection,
            invitee=_collaborator(call, share),
        )
        for share in _shares.recipients(store, node.item.id)
    ]
    return obj(
        "ShareResourceParam",
        url=url,
        teamProject=settings.team_project,
        allowReshare=settings.allow_reshare,
        shouldSync=settings.should_sync,
        shares=configs,
    )


def _default_settings(node: Node) -> Settings:
    """Never shared yet: what the vendor SDK's ``share()`` would ask for at this level."""
    top = node.item is not None and node.item.parent_id is None
    return Settings(team_project=top, allow_reshare=True, should_sync=top)


@method("listShares")
def list_shares(call: Call, param: ctera_xml.Value) -> Obj:
    return _share_info(call, _shareable(call, param), as_str(param))


def _recipient(call: Call, config: Obj, owner_id: int) -> Recipient:
    access = as_str(config.get("accessMode"))
    if access not in _shares.ACCESS_MODES:
        raise HttpError(400, f"unsupported access mode {access!r}")
    expires = _date(as_str(config.get("expiration")))
    invitee = as_obj(config.get("invitee"))
    kind = as_str(invitee.get("type")) if invitee is not None else None
    if invitee is None or kind not in _KNOWN_TYPES:
        raise HttpError(400, f"unsupported collaborator type {kind!r}: this portal has local users and e-mail invitees")
    if kind == _shares.EXTERNAL:
        email = (as_str(invitee.get("email")) or "").strip()
        if "@" not in email:
            raise HttpError(400, f"an external collaborator needs an e-mail address, got {email!r}")
        protection = as_str(config.get("protectionLevel")) or PUBLIC
        if protection not in (PUBLIC, EMAIL):
            raise HttpError(400, f"unsupported protection level {protection!r}")
        return Recipient(access, expires, kind, email=email, protection=protection)
    name = as_str(invitee.get("name")) or ""
    user = call.app.store.user(name)
    if user is None or user.is_admin:
        raise HttpError(400, f"no user {name!r} to share with")
    if user.id == owner_id:
        raise HttpError(400, f"{name!r} owns this item already")
    return Recipient(access, expires, kind, user_id=user.id)


@method("shareResource")
def share_resource(call: Call, param: ctera_xml.Value) -> Obj:
    request = as_obj(param)
    if request is None:
        raise HttpError(400, "shareResource needs a ShareResourceParam")
    node = _shareable(call, request.get("url"))
    assert node.item is not None
    owner = _owner(node)
    wanted = [_recipient(call, config, owner) for config in ctera_xml.iter_objs(request.get("shares"))]
    top = node.item.parent_id is None
    settings = Settings(
        # Only a whole cloud folder can be a team project or synced (the SDK knows it too).
        team_project=top and bool(as_bool(request.get("teamProject"), default=False)),
        allow_reshare=bool(as_bool(request.get("allowReshare"), default=False)),
        should_sync=top and bool(as_bool(request.get("shouldSync"), default=False)),
    )
    _shares.replace_recipients(call.app.store, node.item, owner, settings, wanted)
    return _share_info(call, node, as_str(request.get("url")))


@method("searchCollaborationMembers")
def search_collaboration_members(call: Call, param: ctera_xml.Value) -> Obj:
    request = as_obj(param)
    if request is None:
        raise HttpError(400, "searchCollaborationMembers needs a parameter object")
    kind = as_str(request.get("searchType")) or "users"
    term = (as_str(request.get("searchTerm")) or "").strip().casefold()
    limit = min(_MAX_SEARCH, max(1, as_int(request.get("countLimit"), default=25) or 25))
    matches: list[tuple[tuple[int, str], User]] = []
    if kind == "users":
        for user in call.app.store.users():
            if user.is_admin or user.id == call.session.user.id:
                continue  # administrators are not collaborators; nobody shares with themselves
            name, friendly = user.name.casefold(), user.friendly_name.casefold()
            if term in name or term in friendly:
                rank = 0 if term in (name, friendly) else 1 if name.startswith(term) or friendly.startswith(term) else 2
                matches.append(((rank, name), user))
    matches.sort(key=lambda match: match[0])
    found = [_user_collaborator(user) for _, user in matches[:limit]]
    return obj("CollaboratorsSearchResult", objects=found, hasMore=len(matches) > limit)
