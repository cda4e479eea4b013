"""Accounts: users, their passwords, their cloud folders, and what they use.

An end user owns a personal cloud folder (``My Files``) from the moment the
account exists; administrators own none and see everyone's.  Passwords are
kept as scrypt hashes, checked in constant time, and a login for an unknown
name costs the same as one with a wrong password.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
import time

from portal.store.database import transaction
from portal.store.errors import (
    NotFound,
)
from portal.store.names import check_name, name_key
from portal.store.records import CloudFolder, User

PERSONAL_FOLDER = "My Files"

_CLOUD_FOLDER_SELECT = """
    SELECT c.id, c.name, c.owner_id, c.root_item_id, c.group_uid,
           u.name AS owner_name, u.friendly_name AS owner_friendly_name
    FROM cloud_folders c JOIN users u ON u.id = c.owner_id
"""


class Accounts:
    """Users and cloud folders (the base of the store: everything else is owned by someone)."""

    db: sqlite3.Connection
    case_sensitive: bool

    def name_key(self, name: str) -> str:
        """The form names are compared in (see :func:`portal.store.names.name_key`)."""
        return name_key(name, case_sensitive=self.case_sensitive)

    # ------------------------------------------------------------------ users

    def set_user(
        self,
        name: str,
        password: str,
        *,
        role: str = "EndUser",
        friendly_name: str | None = None,
        quota_bytes: int | None = None,
    ) -> User:
        """Create or update a user; an end user gets a personal cloud folder."""
        check_name(name)
        friendly = friendly_name or name
        check_name(friendly)
        with transaction(self.db):
            self.db.execute(
                """INSERT INTO users (name, friendly_name, role, password_hash, quota_bytes)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (name) DO UPDATE SET friendly_name=excluded.friendly_name,
                       role=excluded.role, password_hash=excluded.password_hash,
                       quota_bytes=excluded.quota_bytes""",
                (name, friendly, role, _hash_password(password), quota_bytes),
            )
            user = self.user(name)
            assert user is not None
            if not user.is_admin and not self.cloud_folders(user.id):
                self._create_cloud_folder(user, PERSONAL_FOLDER)
        return user

    def _create_cloud_folder(self, owner: User, name: str) -> CloudFolder:
        check_name(name)
        now = time.time()
        cursor = self.db.execute(
            "INSERT INTO items (parent_id, cloud_folder_id, name, name_key, is_folder, mtime) VALUES (NULL, 0, ?, ?, 1, ?)",
            (name, self.name_key(name), now),
        )
        root_id = cursor.lastrowid
        folder_id = self.db.execute(
            "INSERT INTO cloud_folders (name, owner_id, root_item_id, group_uid) VALUES (?, ?, ?, ?)",
            (name, owner.id, root_id, owner.id),
        ).lastrowid
        self.db.execute("UPDATE items SET cloud_folder_id=? WHERE id=?", (folder_id, root_id))
        self._log([root_id])
        return self.cloud_folder(folder_id)

    def authenticate(self, name: str, password: str) -> User | None:
        row = self.db.execute("SELECT * FROM users WHERE name=?", (name,)).fetchone()
        if row is None:
            _hash_password(password)  # spend the same time whether or not the user exists
            return None
        if not _check_password(password, row["password_hash"]):
            return None
        return User.from_row(row)

    def user(self, name: str) -> User | None:
        row = self.db.execute("SELECT * FROM users WHERE name=?", (name,)).fetchone()
        return User.from_row(row) if row else None

    def user_by_id(self, user_id: int) -> User:
        return User.from_row(self.db.execute("SELECT * FROM users WHERE id=?", (user_id,)).fetchone())

    def users(self) -> list[User]:
        return [User.from_row(r) for r in self.db.execute("SELECT * FROM users ORDER BY name")]

    def end_user_by_friendly_name(self, friendly: str) -> User | None:
        for row in self.db.execute("SELECT * FROM users WHERE role='EndUser'"):
            if self.name_key(row["friendly_name"]) == self.name_key(friendly):
                return User.from_row(row)
        return None

    # ---------------------------------------------------------- cloud folders

    def cloud_folders(self, owner_id: int) -> list[CloudFolder]:
        rows = self.db.execute(_CLOUD_FOLDER_SELECT + " WHERE c.owner_id=? ORDER BY c.name", (owner_id,))
        return [CloudFolder.from_row(r) for r in rows]

    def all_cloud_folders(self) -> list[CloudFolder]:
        return [CloudFolder.from_row(r) for r in self.db.execute(_CLOUD_FOLDER_SELECT + " ORDER BY c.id")]

    def cloud_folder(self, folder_id: int) -> CloudFolder:
        row = self.db.execute(_CLOUD_FOLDER_SELECT + " WHERE c.id=?", (folder_id,)).fetchone()
        if row is None:
            raise NotFound(f"no cloud folder {folder_id}")
        return CloudFolder.from_row(row)

    def usage(self, owner_id: int) -> int:
        """Bytes of live file content in the cloud folders ``owner_id`` owns."""
        row = self.db.execute(
            """SELECT COALESCE(SUM(i.size), 0) AS used FROM items i
               JOIN cloud_folders c ON c.id = i.cloud_folder_id
               WHERE c.owner_id=? AND i.deleted_at IS NULL AND i.is_folder=0""",
            (owner_id,),
        ).fetchone()
        return int(row["used"])

    def quota_of(self, cloud_folder_id: int) -> tuple[int, int | None]:
        """(used bytes, quota bytes or None) of the owner of a cloud folder."""
        folder = self.cloud_folder(cloud_folder_id)
        return self.usage(folder.owner_id), self.user_by_id(folder.owner_id).quota_bytes


# ------------------------------------------------------------------ passwords

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def _hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def _check_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    expected = _hash_password(password, bytes.fromhex(salt_hex)).split("$")[2]
    return hmac.compare_digest(expected, digest_hex)
