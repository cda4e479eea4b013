"""Public links and collaboration shares: who may read which item, until when.

A share row grants one recipient access to one item (a file or folder, found
by id, so a share follows its item through renames and moves).  There are two
kinds, kept apart because the protocol manages them apart (spec §4.9):

* **public links** (``invite`` set): made one at a time by ``createShare``,
  opened by anyone holding the URL through the invitation context;
* **collaboration recipients** (``invite`` null): the list ``shareResource``
  replaces as a whole and ``listShares`` reports; local users see what is
  shared with them under *Shared With Me*.

A share is *in force* while its item is live and its expiration date (a
``YYYY-MM-DD`` day, inclusive, UTC) has not passed.  A deleted item's shares
stay recorded and work again if the item is restored.

The store only keeps the bookkeeping; what access means (listing, download)
is decided by the HTTP layer's namespaces.
"""

from __future__ import annotations

import datetime as dt
import secrets
import sqlite3
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from portal.store.database import transaction
from portal.store.errors import NotFound
from portal.store.records import Item

if TYPE_CHECKING:
    from portal.store.store import Store

READ_WRITE, READ_ONLY, PREVIEW_ONLY, UPLOAD_ONLY, NO_ACCESS = "ReadWrite", "ReadOnly", "PreviewOnly", "UploadOnly", "None"
ACCESS_MODES = (READ_WRITE, READ_ONLY, PREVIEW_ONLY, UPLOAD_ONLY, NO_ACCESS)

LOCAL_USER, EXTERNAL = "localUser", "external"

#: Invitation ids: alphanumeric (the vendor SDK checks ``isalnum``), ~119 random bits.
_INVITE_ALPHABET = string.ascii_letters + string.digits
_INVITE_LENGTH = 20


@dataclass(frozen=True, slots=True)
class Share:
    id: int
    item_id: int
    owner_id: int
    invite: str | None  # a public link's id; None for a collaboration recipient
    access: str
    expires: str | None  # YYYY-MM-DD, inclusive; None: never
    protection: str | None  # "publicLink" or "email" (external recipients only)
    invitee_type: str
    invitee_user_id: int | None
    invitee_email: str | None
    created: float

    @property
    def is_link(self) -> bool:
        return self.invite is not None

    def expired(self, today: dt.date | None = None) -> bool:
        if self.expires is None:
            return False
        today = today or dt.datetime.now(dt.timezone.utc).date()
        try:
            return dt.date.fromisoformat(self.expires) < today
        except ValueError:  # unreadable: never grant access on a date we cannot read
            return True

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Share:
        return cls(
            row["id"], row["item_id"], row["owner_id"], row["invite"], row["access"], row["expires"],
            row["protection"], row["invitee_type"], row["invitee_user_id"], row["invitee_email"], row["created"],
        )


@dataclass(frozen=True, slots=True)
class Recipient:
    """One entry of a recipient list as ``shareResource`` hands it over."""

    access: str
    expires: str | None
    invitee_type: str
    user_id: int | None = None
    email: str | None = None
    protection: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    team_project: bool
    allow_reshare: bool
    should_sync: bool


def check_date(text: str | None) -> str | None:
    """A ``YYYY-MM-DD`` expiration (or None); anything else is refused with ValueError."""
    if text is None or text == "":
        return None
    return dt.date.fromisoformat(text.strip()[:10]).isoformat()


# ------------------------------------------------------------------ links


def create_link(store: Store, item: Item, owner_id: int, access: str, expires: str | None) -> Share:
    """A new public link to ``item`` (a live item, not a snapshot's)."""
    if item.snapshot_id is not None or item.is_deleted:
        raise NotFound(f"{item.name!r} cannot be shared")
    with transaction(store.db):
        while True:
            invite = "".join(secrets.choice(_INVITE_ALPHABET) for _ in range(_INVITE_LENGTH))
            if link(store, invite) is None:
                break
        share_id = store.db.execute(
            """INSERT INTO shares (item_id, owner_id, invite, access, expires, protection, invitee_type, created)
               VALUES (?, ?, ?, ?, ?, 'publicLink', ?, ?)""",
            (item.id, owner_id, invite, access, expires, EXTERNAL, time.time()),
        ).lastrowid
        return _share(store, share_id)


def link(store: Store, invite: str) -> Share | None:
    """The public link with this id, in force or not (the caller tells them apart)."""
    row = store.db.execute("SELECT * FROM shares WHERE invite=?", (invite,)).fetchone()
    return Share.from_row(row) if row else None


def links_of(store: Store, item_id: int) -> list[Share]:
    rows = store.db.execute("SELECT * FROM shares WHERE item_id=? AND invite IS NOT NULL ORDER BY id", (item_id,))
    return [Share.from_row(r) for r in rows]


# ------------------------------------------------------------ collaboration


def recipients(store: Store, item_id: int) -> list[Share]:
    """The item's collaboration recipients, in the order they were given."""
    rows = store.db.execute("SELECT * FROM shares WHERE item_id=? AND invite IS NULL ORDER BY id", (item_id,))
    return [Share.from_row(r) for r in rows]


def settings(store: Store, item_id: int) -> Settings | None:
    row = store.db.execute("SELECT * FROM share_settings WHERE item_id=?", (item_id,)).fetchone()
    if row is None:
        return None
    return Settings(bool(row["team_project"]), bool(row["allow_reshare"]), bool(row["should_sync"]))


def replace_recipients(
    store: Store, item: Item, owner_id: int, new_settings: Settings, wanted: Sequence[Recipient]
) -> list[Share]:
    """Make ``wanted`` the item's whole recipient list (empty: unshare).

    A recipient already on the list keeps its row (and creation time); one
    given twice counts once, the last entry winning, as a replacement would.
    """
    if item.snapshot_id is not None or item.is_deleted:
        raise NotFound(f"{item.name!r} cannot be shared")
    by_identity: dict[tuple, Recipient] = {}
    for entry in wanted:
        by_identity[_identity(entry.invitee_type, entry.user_id, entry.email)] = entry
    with transaction(store.db):
        kept: set[int] = set()
        for current in recipients(store, item.id):
            entry = by_identity.pop(_identity(current.invitee_type, current.invitee_user_id, current.invitee_email), None)
            if entry is None:
                continue
            store.db.execute(
                "UPDATE shares SET access=?, expires=?, protection=? WHERE id=?",
                (entry.access, entry.expires, entry.protection, current.id),
            )
            kept.add(current.id)
        for current in recipients(store, item.id):
            if current.id not in kept:
                store.db.execute("DELETE FROM shares WHERE id=?", (current.id,))
        for entry in by_identity.values():
            store.db.execute(
                """INSERT INTO shares (item_id, owner_id, invite, access, expires, protection, invitee_type,
                                       invitee_user_id, invitee_email, created)
                   VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?, ?)""",
                (item.id, owner_id, entry.access, entry.expires, entry.protection, entry.invitee_type,
                 entry.user_id, entry.email, time.time()),
            )
        store.db.execute(
            """INSERT INTO share_settings (item_id, team_project, allow_reshare, should_sync) VALUES (?, ?, ?, ?)
               ON CONFLICT (item_id) DO UPDATE SET team_project=excluded.team_project,
                   allow_reshare=excluded.allow_reshare, should_sync=excluded.should_sync""",
            (item.id, new_settings.team_project, new_settings.allow_reshare, new_settings.should_sync),
        )
        return recipients(store, item.id)


def shared_with(store: Store, user_id: int) -> list[tuple[Share, Item]]:
    """Collaboration shares in force for ``user_id`` that grant some access, oldest first."""
    rows = store.db.execute(
        """SELECT s.* FROM shares s JOIN items i ON i.id = s.item_id
           WHERE s.invitee_user_id=? AND s.invite IS NULL AND s.access != ? AND i.deleted_at IS NULL
           ORDER BY s.id""",
        (user_id, NO_ACCESS),
    )
    found = []
    for row in rows.fetchall():
        share = Share.from_row(row)
        if not share.expired():
            found.append((share, store.item(share.item_id)))
    return found


def _share(store: Store, share_id: int) -> Share:
    return Share.from_row(store.db.execute("SELECT * FROM shares WHERE id=?", (share_id,)).fetchone())


def _identity(invitee_type: str, user_id: int | None, email: str | None) -> tuple:
    if invitee_type == EXTERNAL:
        return (EXTERNAL, (email or "").casefold())
    return (invitee_type, user_id)
