"""The HTTP client under a CTERA backend: TLS trust, timeouts, pool size.

* TLS verification is on by default against the system's CAs.  ``ca_file``
  replaces them with the given bundle (the way to trust a portal's
  self-signed certificate); ``insecure`` turns verification off and says so
  loudly, once per process, because a mount that silently trusts anyone is
  worse than one that fails.
* Every request has a connect, read, write and pool timeout (:class:`Timeouts`);
  waiting for a background task has its own bound.
  A read timeout bounds each wait for the next bytes, not a whole transfer, so
  a large range that keeps arriving is never cut off.
* The pool allows :data:`POOL_CONNECTIONS` connections: the cache above
  issues parallel range reads, and the portal speaks HTTP/1.1 only
  (docs/PROTOCOL-CHOICES.md #18), so parallelism means connections.
* The client keeps **no cookie jar**: the session layer sends the one cookie
  it manages itself, so a ``Set-Cookie`` on some unrelated reply can never
  swap the session behind its back.
* Redirects are never followed: a 302 is the portal's "session expired"
  signal and must be seen, not chased to a login page.
"""

from __future__ import annotations

import http.cookiejar
import logging
import ssl
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = ["DEFAULT_TIMEOUTS", "KEEPALIVE_EXPIRY", "POOL_CONNECTIONS", "Timeouts", "make_client", "ssl_context"]

log = logging.getLogger(__name__)

POOL_CONNECTIONS = 16
#: Seconds an idle keep-alive connection is kept for reuse (servers close idle
#: connections after a while; 30 s is a common choice).
KEEPALIVE_EXPIRY = 30.0
USER_AGENT = "portalfs/0.1 (CTERA Portal client; httpx)"

_insecure_warned = False


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed for each phase of one request, and for a background task.

    ``task`` bounds the wait for a portal-side task (move, copy, delete,
    undelete) from its submission to its end; a recursive copy of a large
    tree runs for a while, so it is generous.
    """

    connect: float = 10.0
    read: float = 30.0
    write: float = 30.0
    pool: float = 30.0
    task: float = 300.0

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


DEFAULT_TIMEOUTS = Timeouts()


def ssl_context(*, ca_file: str | Path | None, insecure: bool) -> ssl.SSLContext:
    """The TLS context: system CAs, or exactly ``ca_file``, or (loudly) none."""
    if insecure:
        _warn_insecure()
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_file is not None:
        return ssl.create_default_context(cafile=str(ca_file))
    return ssl.create_default_context()


def _warn_insecure() -> None:
    global _insecure_warned
    if not _insecure_warned:
        _insecure_warned = True
        log.warning(
            "TLS CERTIFICATE VERIFICATION IS OFF: anyone on the network path can read and change "
            "everything this mount sends and receives, including the password. Use ca_file instead."
        )


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    def set_ok(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        return False


def make_client(
    base_url: str,
    *,
    tls: ssl.SSLContext | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An ``AsyncClient`` for ``base_url`` configured as this module describes
    (``tls``: from :func:`ssl_context`; the system's CAs when None)."""
    kwargs: dict[str, object] = {}
    if transport is not None:
        kwargs["transport"] = transport
    else:
        kwargs["verify"] = tls if tls is not None else ssl_context(ca_file=None, insecure=False)
        kwargs["limits"] = httpx.Limits(
            max_connections=POOL_CONNECTIONS,
            max_keepalive_connections=POOL_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_EXPIRY,
        )
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=timeouts.to_httpx(),
        follow_redirects=False,
        cookies=http.cookiejar.CookieJar(policy=_NoCookies()),
        headers={"user-agent": USER_AGENT},
        # $HTTPS_PROXY and friends are honoured, as by the vendor SDK; never for an
        # injected transport, which a proxy mount would otherwise bypass.
        trust_env=transport is None,
        **kwargs,  # type: ignore[arg-type]
    )
