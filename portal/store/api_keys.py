"""S3-style access key pairs (``getApiKeys``, ``createApiKey``, ``deleteApiKey``; spec §8.1).

A key pair is made for a user, listed by its access key id, and deleted by
its ``uid``.  The secret is handed out once, at creation, and only its hash is
kept: this portal serves no S3 endpoint or Direct IO that would need the
secret itself, so keeping it in the clear would only be a liability.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import string
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from portal.store.database import transaction
from portal.store.errors import NotFound

if TYPE_CHECKING:
    from portal.store.store import Store

#: The shapes AWS uses: 20 upper-case letters and digits; 40 characters of base64.
_ACCESS_ALPHABET = string.ascii_uppercase + string.digits
_ACCESS_LENGTH = 20


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    user_id: int
    access_key: str
    created: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ApiKey:
        return cls(row["id"], row["user_id"], row["access_key"], row["created"])


def create(store: Store, user_id: int) -> tuple[ApiKey, str]:
    """A new key pair for ``user_id``: the key and its secret (never retrievable again)."""
    secret = secrets.token_urlsafe(30)[:40]
    with transaction(store.db):
        while True:
            access_key = "".join(secrets.choice(_ACCESS_ALPHABET) for _ in range(_ACCESS_LENGTH))
            if store.db.execute("SELECT 1 FROM api_keys WHERE access_key=?", (access_key,)).fetchone() is None:
                break
        key_id = store.db.execute(
            "INSERT INTO api_keys (user_id, access_key, secret_hash, created) VALUES (?, ?, ?, ?)",
            (user_id, access_key, hashlib.sha256(secret.encode()).hexdigest(), time.time()),
        ).lastrowid
        return key(store, key_id), secret


def of_user(store: Store, user_id: int) -> list[ApiKey]:
    rows = store.db.execute("SELECT * FROM api_keys WHERE user_id=? ORDER BY id", (user_id,))
    return [ApiKey.from_row(r) for r in rows]


def key(store: Store, key_id: int) -> ApiKey:
    row = store.db.execute("SELECT * FROM api_keys WHERE id=?", (key_id,)).fetchone()
    if row is None:
        raise NotFound(f"no API key {key_id}")
    return ApiKey.from_row(row)


def delete(store: Store, key_id: int) -> None:
    with transaction(store.db):
        store.db.execute("DELETE FROM api_keys WHERE id=?", (key_id,))
