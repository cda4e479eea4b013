"""Logging in to the real reference portal over HTTPS: success, refusals, TLS, expiry, contexts."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from portal.tls import self_signed
from tests.support.portal_process import PortalProcess, free_port
from tests.unit.backends.conftest import connect, expire_sessions, in_thread
from vfs.backends.base import AuthenticationFailed, NotFound, Unreachable
from vfs.backends.ctera import connection, open_ctera_backend


async def test_login_works_and_logout_ends_the_session(sample_portal: PortalProcess) -> None:
    async with connect(sample_portal) as backend:
        assert backend.context == "/ServicesPortal"
        root = await backend.stat(())
        assert root.is_dir and not root.writable
        stats = backend.statistics()
    assert stats.count("login") == 1 and stats.relogins == 0
    assert backend.statistics().count("logout") == 1


async def test_a_wrong_password_is_authentication_failed(sample_portal: PortalProcess) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        async with open_ctera_backend(sample_portal.url, "alice", "not-her-password", ca_file=sample_portal.cert):
            pass
    assert "wrong user name or password" in str(caught.value)
    assert "not-her-password" not in str(caught.value)


async def test_an_unknown_user_is_authentication_failed(sample_portal: PortalProcess) -> None:
    with pytest.raises(AuthenticationFailed):
        async with open_ctera_backend(sample_portal.url, "mallory", "x", ca_file=sample_portal.cert):
            pass


async def test_an_administrator_must_use_the_admin_context(sample_portal: PortalProcess) -> None:
    with pytest.raises(AuthenticationFailed, match="admin=True"):
        async with open_ctera_backend(
            sample_portal.url, "root", sample_portal.admins["root"], ca_file=sample_portal.cert
        ):
            pass


async def test_an_unreachable_port_fails_fast_with_a_clear_reason() -> None:
    with trio.fail_after(5):
        with pytest.raises(Unreachable) as caught:
            async with open_ctera_backend(f"https://127.0.0.1:{free_port()}", "alice", "pw"):
                pass
    message = str(caught.value)
    assert "connection refused" in message and "127.0.0.1" in message
    assert "\n" not in message


async def test_an_untrusted_certificate_is_a_clear_tls_error(sample_portal: PortalProcess, tmp_path: Path) -> None:
    other_ca = self_signed(tmp_path / "other", "127.0.0.1").cert_path
    for ca_file in (other_ca, None):  # another self-signed CA; the system's CAs
        with trio.fail_after(10):
            with pytest.raises(Unreachable) as caught:
                async with connect(sample_portal, ca_file=ca_file):
                    pass
        assert "TLS certificate verification failed" in str(caught.value)
        assert "\n" not in str(caught.value)


async def test_insecure_works_and_warns_loudly_once(
    sample_portal: PortalProcess, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "_insecure_warned", False)
    caplog.set_level(logging.WARNING, logger="vfs.backends.ctera")
    for _ in range(2):
        async with connect(sample_portal, ca_file=None, insecure=True) as backend:
            await backend.stat(("My Files",))
    loud = [r for r in caplog.records if "VERIFICATION IS OFF" in r.getMessage()]
    assert len(loud) == 1


async def test_urls_with_paths_or_credentials_are_refused() -> None:
    for url in ("https://host/ServicesPortal/x", "ftp://host", "https://alice:pw@host"):
        with pytest.raises(ValueError) as caught:
            async with open_ctera_backend(url, "alice", "pw"):
                pass
        assert "pw@" not in str(caught.value)


async def test_session_expiry_is_transparent(portal: PortalProcess) -> None:
    async with connect(portal) as backend:
        await backend.stat(("My Files",))
        await in_thread(expire_sessions, portal)
        entry = await backend.stat(("My Files",))
        assert entry.is_dir
        stats = backend.statistics()
        assert stats.relogins == 1 and stats.count("login") == 2


async def test_expiry_under_concurrency_logs_in_once(portal: PortalProcess) -> None:
    async with connect(portal) as backend:
        await backend.stat(("My Files",))
        await in_thread(expire_sessions, portal)
        async with trio.open_nursery() as nursery:
            for _ in range(12):
                nursery.start_soon(backend.stat, ("My Files",))
            nursery.start_soon(backend.list_page, ("My Files",), 0, 10)
        assert backend.statistics().relogins == 1
        assert backend.statistics().count("login") == 2


async def test_admin_context_sees_users_folders(sample_portal: PortalProcess) -> None:
    async with connect(sample_portal, "root") as admin:
        assert admin.context == "/admin"
        users = await admin.list_page(("Users",), 0, 100)
        assert sorted(entry.name for entry in users.entries) == ["alice", "bob"]
        assert all(not entry.writable for entry in users.entries)  # containers are read-only
        report = await admin.stat(("Users", "alice", "My Files", "Documents", "Report.txt"))
        assert not report.is_dir and report.size > 0
        with pytest.raises(NotFound):
            await admin.stat(("My Files",))  # end-user paths do not exist in /admin
