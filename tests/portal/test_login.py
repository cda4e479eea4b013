"""Logging in to the reference portal, and losing the session, with the unmodified vendor SDK.

The SDK's only expiry signal is a 302 to ``/ServicesPortal/login.html``; the
test hook ``POST /portalfs/test/expire-sessions`` (the fixtures pass
``--test-hooks``) drops every live session so the tests can see it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cterasdk import GlobalAdmin, ServicesPortal
from cterasdk.exceptions.auth import AuthenticationError
from cterasdk.exceptions.session import SessionExpired

from tests.support.portal_process import PortalProcess, running_portal
from tests.support.sdk import admin_session, portal_hook, user_session


def expire_sessions(portal: PortalProcess) -> None:
    """Drop every session on the server."""
    assert portal_hook(portal, "expire-sessions").startswith("expired ")


def test_end_user_logs_in_and_sees_personal_folder(portal: PortalProcess) -> None:
    user = ServicesPortal(portal.host, portal.port)
    user.login("alice", portal.users["alice"])
    try:
        assert [entry.name for entry in user.files.listdir("/")] == ["My Files"]
        assert user.session().account.name == "alice"
    finally:
        user.logout()


def test_wrong_password_is_refused(portal: PortalProcess) -> None:
    user = ServicesPortal(portal.host, portal.port)
    with pytest.raises(AuthenticationError):
        user.login("alice", "not-the-password")


def test_unknown_user_is_refused(portal: PortalProcess) -> None:
    user = ServicesPortal(portal.host, portal.port)
    with pytest.raises(AuthenticationError):
        user.login("mallory", "whatever")


def test_global_admin_sees_users_folders(portal: PortalProcess) -> None:
    admin = GlobalAdmin(portal.host, portal.port)
    admin.login("root", portal.admins["root"])
    try:
        assert sorted(entry.name for entry in admin.files.listdir("Users")) == ["alice", "bob"]
        assert admin.session().account.name == "root"
    finally:
        admin.logout()


def test_global_admin_wrong_password_is_refused(portal: PortalProcess) -> None:
    admin = GlobalAdmin(portal.host, portal.port)
    with pytest.raises(AuthenticationError):
        admin.login("root", "not-the-password")


def test_each_kind_of_account_logs_in_to_its_own_context_only(portal: PortalProcess) -> None:
    with pytest.raises(AuthenticationError):
        GlobalAdmin(portal.host, portal.port).login("alice", portal.users["alice"])
    with pytest.raises(AuthenticationError):
        ServicesPortal(portal.host, portal.port).login("root", portal.admins["root"])


def test_expired_session_raises_and_a_new_login_works(portal: PortalProcess) -> None:
    user = ServicesPortal(portal.host, portal.port)
    user.login("alice", portal.users["alice"])
    try:
        assert user.files.exists("My Files")
        expire_sessions(portal)
        with pytest.raises(SessionExpired):
            user.files.exists("My Files")
        user.login("alice", portal.users["alice"])
        assert [entry.name for entry in user.files.listdir("/")] == ["My Files"]
    finally:
        user.logout()


def test_expired_admin_session_raises_too(portal: PortalProcess) -> None:
    with admin_session(portal) as admin:
        assert admin.files.exists("Users/alice/My Files")
        expire_sessions(portal)
        with pytest.raises(SessionExpired):
            list(admin.files.listdir("Users"))
        admin.login("root", portal.admins["root"])
        assert admin.files.exists("Users/alice/My Files")


def test_an_idle_session_times_out(tmp_path: Path) -> None:
    with running_portal(tmp_path / "data", "--session-timeout", "2") as portal:
        with user_session(portal, "alice") as user:
            for _ in range(2):  # 2.4 s in all, but never 2 s idle: each request renews the session
                time.sleep(1.2)
                assert user.files.exists("My Files")
            time.sleep(2.5)
            with pytest.raises(SessionExpired):
                user.files.exists("My Files")


def test_expiry_hits_every_session(portal: PortalProcess) -> None:
    with user_session(portal, "alice") as alice, user_session(portal, "bob") as bob:
        expire_sessions(portal)
        for client in (alice, bob):
            with pytest.raises(SessionExpired):
                client.files.listdir("/")
        alice.login("alice", portal.users["alice"])
        assert alice.files.exists("My Files")
        bob.login("bob", portal.users["bob"])
        assert bob.files.exists("My Files")


# The SDK's session-id accessors hand aiohttp a str URL, which aiohttp
# deprecates; that is inside the vendor's code, not ours.
_cookie_url_warning = pytest.mark.filterwarnings("ignore:filter_cookies expects yarl.URL:DeprecationWarning")


@_cookie_url_warning
def test_logout_ends_the_session_on_the_server(portal: PortalProcess) -> None:
    user = ServicesPortal(portal.host, portal.port)
    user.login("alice", portal.users["alice"])
    session_id = user.get_session_id()
    assert session_id
    user.logout()
    thief = ServicesPortal(portal.host, portal.port)
    try:
        with pytest.raises(SessionExpired):
            thief.set_session_id(session_id)
    finally:
        thief.logout()


@_cookie_url_warning
def test_a_session_id_can_be_carried_to_another_client(portal: PortalProcess) -> None:
    with user_session(portal, "alice") as user:
        other = ServicesPortal(portal.host, portal.port)
        try:
            other.set_session_id(user.get_session_id())
            assert other.session().account.name == "alice"
            assert [entry.name for entry in other.files.listdir("/")] == ["My Files"]
        finally:
            other.logout()
        with pytest.raises(SessionExpired):
            user.files.listdir("/")  # one session, ended through the other client


@_cookie_url_warning
def test_a_services_session_is_not_valid_in_admin(portal: PortalProcess) -> None:
    with user_session(portal, "alice") as user:
        other = GlobalAdmin(portal.host, portal.port)
        try:
            with pytest.raises(SessionExpired):
                other.set_session_id(user.get_session_id())
        finally:
            other.logout()
        assert user.files.exists("My Files")
