"""Who is calling: cookie sessions, HTTP Basic for WebDAV clients, expiry.

The vendor SDK recognises exactly one expiry signal: a ``302`` whose
``Location`` is ``/ServicesPortal/login.html``.  We answer every request that
carries an unknown or expired ``JSESSIONID`` with it, in both contexts (the
``/admin`` form is unknown; see docs/PROTOCOL-CHOICES.md).

Stock WebDAV clients (rclone, davfs2) send ``Authorization: Basic`` on every
request.  Verifying a scrypt hash costs tens of milliseconds, so a verified
credential is remembered for a short while (keyed by a hash, never the
password itself).

Sessions live in memory: a restarted portal forgets them, and clients see the
same 302 they would see after an idle timeout, which is what a real portal
cluster failing over looks like to them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from cachetools import TTLCache

from portal.store import Store, User

SERVICES = "/ServicesPortal"
ADMIN = "/admin"
#: Where public links are opened; its sessions are anonymous (see portal.http.invitations).
INVITATIONS = "/invitations"
#: The contexts one logs in to.
CONTEXTS = (SERVICES, ADMIN)
COOKIE = "JSESSIONID"
LOGIN_PAGE = "/ServicesPortal/login.html"
#: The most anonymous sessions kept; beyond it the oldest are forgotten (their holders open the link again).
MAX_ANONYMOUS = 10_000


@dataclass
class Session:
    id: str
    user: User
    context: str
    created: float
    last_seen: float
    #: The tenant a global admin browses into (``PUT /admin/api/currentPortal``).
    browsing_tenant: str = ""
    extra: dict[str, object] = field(default_factory=dict)


class SessionTable:
    """Live sessions, with an idle timeout."""

    def __init__(self, store: Store, *, idle_timeout: float = 1800.0) -> None:
        self._store = store
        self._sessions: dict[str, Session] = {}
        self.idle_timeout = idle_timeout
        self._basic_cache: TTLCache[str, User] = TTLCache(maxsize=256, ttl=60)
        #: Anonymous sessions, oldest first: opening a link costs nothing, so they are capped.
        self._anonymous: OrderedDict[str, None] = OrderedDict()

    def login(self, name: str, password: str, context: str) -> Session | None:
        """A new session for good credentials in the right context, else None."""
        user = self._store.authenticate(name, password)
        if user is None or not allowed_in(user, context):
            return None
        now = time.monotonic()
        session = Session(secrets.token_hex(16).upper(), user, context, now, now)
        self._sessions[session.id] = session
        return session

    def open_anonymous(self, acting_for: User, context: str, **extra: object) -> Session:
        """A session nobody logged in to (an opened invitation), acting for ``acting_for``."""
        now = time.monotonic()
        session = Session(secrets.token_hex(16).upper(), acting_for, context, now, now, extra=dict(extra))
        self._sessions[session.id] = session
        self._anonymous[session.id] = None
        while len(self._anonymous) > MAX_ANONYMOUS:
            oldest, _ = self._anonymous.popitem(last=False)
            self._sessions.pop(oldest, None)
        return session

    def get(self, session_id: str | None, context: str) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None or session.context != context:
            return None
        now = time.monotonic()
        if now - session.last_seen > self.idle_timeout:
            del self._sessions[session_id]
            return None
        session.last_seen = now
        return session

    def logout(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)

    def expire_all(self) -> int:
        """Drop every session (the test hook behind ``POST /portalfs/test/expire-sessions``)."""
        count = len(self._sessions)
        self._sessions.clear()
        self._anonymous.clear()
        self._basic_cache.clear()
        return count

    def basic(self, authorization: str | None, context: str) -> User | None:
        """The user of a valid ``Authorization: Basic`` header for this context."""
        if not authorization or not authorization[:6].lower() == "basic ":
            return None
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        name, sep, password = decoded.partition(":")
        if not sep:
            return None
        key = hashlib.sha256(f"{context}\0{decoded}".encode()).hexdigest()
        user = self._basic_cache.get(key)
        if user is None:
            user = self._store.authenticate(name, password)
            if user is None or not allowed_in(user, context):
                return None
            self._basic_cache[key] = user
        return user


def allowed_in(user: User, context: str) -> bool:
    """End users work in /ServicesPortal, global administrators in /admin."""
    return (context == ADMIN) == user.is_admin
