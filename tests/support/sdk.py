"""Sessions of the unmodified vendor SDK (``cterasdk``) against a test portal.

The SDK is our independent judge of protocol fidelity, so tests drive it
exactly as a user would: log in over HTTPS, call its public API, log out.
Certificate checks are off because every test portal has a fresh self-signed
certificate.  The context managers always log out (and close the SDK's HTTP
client) so no test leaks a session or a socket, even when it fails.
"""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import cterasdk.settings
from cterasdk import AsyncGlobalAdmin, AsyncServicesPortal, GlobalAdmin, ServicesPortal

from tests.support.portal_process import PortalProcess

cterasdk.settings.core.syn.settings.connector.ssl = False
cterasdk.settings.core.asyn.settings.connector.ssl = False


@contextmanager
def user_session(portal: PortalProcess, name: str = "alice") -> Iterator[ServicesPortal]:
    """An end user logged in to ``/ServicesPortal``."""
    client = ServicesPortal(portal.host, portal.port)
    client.login(name, portal.users[name])
    try:
        yield client
    finally:
        client.logout()


@contextmanager
def admin_session(portal: PortalProcess, name: str = "root") -> Iterator[GlobalAdmin]:
    """A global administrator logged in to ``/admin``."""
    client = GlobalAdmin(portal.host, portal.port)
    client.login(name, portal.admins[name])
    try:
        yield client
    finally:
        client.logout()


@asynccontextmanager
async def async_user_session(portal: PortalProcess, name: str = "alice") -> AsyncIterator[AsyncServicesPortal]:
    """An end user of the SDK's asyncio flavour (the only one with the change feed)."""
    client = AsyncServicesPortal(portal.host, portal.port)
    await client.login(name, portal.users[name])
    try:
        yield client
    finally:
        await client.logout()


@asynccontextmanager
async def async_admin_session(portal: PortalProcess, name: str = "root") -> AsyncIterator[AsyncGlobalAdmin]:
    """A global administrator of the SDK's asyncio flavour."""
    client = AsyncGlobalAdmin(portal.host, portal.port)
    await client.login(name, portal.admins[name])
    try:
        yield client
    finally:
        await client.logout()


def portal_hook(portal: PortalProcess, name: str) -> str:
    """Call ``POST /portalfs/test/<name>`` (``expire-sessions``, ``snapshot``); its reply text."""
    context = ssl.create_default_context(cafile=str(portal.cert))
    context.check_hostname = False  # the certificate names the host, the tests may use an IP
    request = urllib.request.Request(f"{portal.url}/portalfs/test/{name}", method="POST", data=b"")
    with urllib.request.urlopen(request, context=context, timeout=10) as reply:
        assert reply.status == 200
        return reply.read().decode()
