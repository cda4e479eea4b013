"""Fixtures of the integration tier: real kernel mounts of real portals.

Every mount is taken down in teardown (``fusermount3 -u``, then ``-uz``) and
its daemon stopped, whether the test passed or not.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.mount_process import MountProcess, mounted
from tests.support.portal_process import PortalProcess

pytestmark = pytest.mark.fuse


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not os.path.exists("/dev/fuse"):
        skip = pytest.mark.skip(reason="no /dev/fuse on this machine")
        for item in items:
            if "integration" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def sample_mount(sample_portal: PortalProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MountProcess]:
    """alice's sample ``My Files``, mounted once for the read-only tests of a session
    (``ro``: no test can change the sample tree the others rely on)."""
    with mounted(sample_portal, tmp_path_factory.mktemp("sample-mount") / "mnt", options=["ro"]) as mount:
        yield mount


@pytest.fixture
def webdav(sample_portal: PortalProcess) -> Iterator[httpx.Client]:
    """A plain HTTP client for alice's WebDAV namespace: the truth to compare the mount with."""
    with httpx.Client(
        base_url=f"{sample_portal.url}/ServicesPortal/webdav/My%20Files/",
        auth=("alice", sample_portal.users["alice"]),
        verify=ssl.create_default_context(cafile=str(sample_portal.cert)),
        timeout=60,
    ) as client:
        yield client


def portal_bytes(client: httpx.Client, relative: str) -> bytes:
    response = client.get(relative.replace(" ", "%20"))
    response.raise_for_status()
    return response.content


@pytest.fixture
def mount_dir(tmp_path: Path) -> Path:
    return tmp_path / "mnt"
