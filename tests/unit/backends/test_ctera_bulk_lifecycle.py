"""The bulk transport: when it is used at all, and what it leaves behind when a transfer is cut short.

(The transport's transfers and failures against the real portal are in
test_ctera_bulk.py.)
"""

from __future__ import annotations

import ssl

import pytest

from vfs.backends.ctera.bulk import bulk_transport_for
from vfs.backends.ctera.connection import Timeouts

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def bulk_for(url: str) -> object:
    return bulk_transport_for(url, ssl.create_default_context(), Timeouts())


@pytest.fixture
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_all_proxy_alone_keeps_content_on_httpx(no_proxies: pytest.MonkeyPatch) -> None:
    assert bulk_for("https://portal.example") is not None
    no_proxies.setenv("ALL_PROXY", "socks5://proxy.example:1080")
    assert bulk_for("https://portal.example") is None
    assert bulk_for("http://portal.example:8080") is None
    no_proxies.setenv("NO_PROXY", "portal.example")
    assert bulk_for("https://portal.example") is not None
