"""Login, logout and the session objects the vendor SDK reads right after login.

``currentSession``, ``currentPortal`` and ``version`` must all answer or the
SDK's login fails; administrators additionally fetch their role settings, an
object that must hold every one of the seventeen flags (a missing one crashes
the SDK).
"""

from __future__ import annotations

import urllib.parse

from portal.http.asgi import HttpError, Request, Response, xml_response
from portal.http.sessions import ADMIN, COOKIE, Session, SessionTable
from wire.ctera_xml import Obj, obj

PORTAL_VERSION = "8.1.1500.12"
TENANT = "portalfs"
MAX_LOGIN_BODY = 16 << 10

ROLE_SETTINGS = (
    "superUser",
    "allowRemoteWipe",
    "allowSSO",
    "allowSeedingExport",
    "allowSeedingImport",
    "canAccessEndUserFolders",
    "canChangePortalSettings",
    "canChangeRoles",
    "canChangeUserEmail",
    "canChangeUserPassword",
    "canManageAllFolders",
    "canManagePlans",
    "canManageUsers",
    "canManageLogSettings",
    "allowFoldersFilesPermanentDelete",
    "canManageLegalHolds",
    "canManageComplianceSetting",
)
ROLE_SETTINGS_NAMES = ("readWriteAdminSettings", "readOnlyAdminSettings", "supportAdminSettings")


async def login(sessions: SessionTable, request: Request, context: str) -> Response:
    body = await request.body(MAX_LOGIN_BODY)
    form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    name = (form.get("j_username") or [""])[0]
    password = (form.get("j_password") or [""])[0]
    session = sessions.login(name, password, context)
    if session is None:
        raise HttpError(403, "Authentication failed: Invalid username or password")
    cookie = f"{COOKIE}={session.id}; Path=/; Secure; HttpOnly; SameSite=Lax"
    return Response(200, b"", headers=[("set-cookie", cookie)])


def current_session(session: Session) -> Obj:
    user = session.user
    return obj(
        "PortalSession",
        username=user.name,
        domain=None,
        role=user.role,
        firstName=user.friendly_name,
        lastName=None,
        tenant=current_portal(session),
    )


def current_portal(session: Session) -> str:
    if session.context == ADMIN:
        return session.browsing_tenant
    return TENANT


def role_settings(session: Session, name: str) -> Obj:
    if not session.user.is_admin or name not in ROLE_SETTINGS_NAMES:
        raise HttpError(404, "Resource does not exist")
    read_write = name == "readWriteAdminSettings"
    flags = {flag: read_write or flag == "canAccessEndUserFolders" for flag in ROLE_SETTINGS}
    return obj("RoleSettings", name=name, **flags)


def user_fields(sessions_store, session: Session, user_name: str, wanted: list[str]) -> Obj:
    """The ``db get-multi`` call on ``{ctx}/api/users/<name>``: ``{uid, name}``."""
    user = sessions_store.user(user_name)
    if user is not None and not session.user.is_admin and user.id != session.user.id:
        user = None
    fields: dict[str, object] = {}
    for path in wanted:
        key = path.strip("/")
        if key == "uid":
            fields[key] = user.id if user else None
        elif key == "name":
            fields[key] = user.name if user else None
    return Obj(None, fields)


def public_info() -> Response:
    return xml_response(obj("PublicInfo", version=PORTAL_VERSION, name=TENANT))
