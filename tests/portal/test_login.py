"""Logging in to the reference portal with the unmodified vendor SDK."""

from __future__ import annotations

import cterasdk.settings
import pytest
from cterasdk import GlobalAdmin, ServicesPortal
from cterasdk.exceptions.auth import AuthenticationError

from tests.support.portal_process import PortalProcess

cterasdk.settings.core.syn.settings.connector.ssl = False


def test_end_user_logs_in_and_sees_personal_folder(portal: PortalProcess) -> None:
    user = ServicesPortal(portal.host, portal.port)
    user.login("alice", portal.users["alice"])
    try:
        assert [entry.name for entry in user.files.listdir("/")] == ["My Files"]
    finally:
        user.logout()


def test_wrong_password_is_refused(portal: PortalProcess) -> None:
    user = ServicesPortal(portal.host, portal.port)
    with pytest.raises(AuthenticationError):
        user.login("alice", "not-the-password")


def test_global_admin_sees_users_folders(portal: PortalProcess) -> None:
    admin = GlobalAdmin(portal.host, portal.port)
    admin.login("root", portal.admins["root"])
    try:
        assert sorted(entry.name for entry in admin.files.listdir("Users")) == ["alice", "bob"]
    finally:
        admin.logout()
