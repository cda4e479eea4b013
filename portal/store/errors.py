"""Why a store operation was refused.

::

    StoreError
    ├── NotFound            the path or item does not exist
    ├── Exists              the target name is taken (the portal's "Conflict")
    ├── NotAFolder          a folder was required
    ├── IsAFolder           a file was required
    ├── InvalidName         the portal's ``InvalidName``
    ├── ReservedName        the portal's ``ReservedName``
    ├── PermissionDenied    read-only location (root, containers, snapshots)
    └── QuotaExceeded       the owner's quota would be exceeded

Each carries the wire code the portal uses for it, so the HTTP layer maps them
without a table of its own.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every refusal; ``code`` is the portal's error code."""

    code = "GeneralError"


class NotFound(StoreError):
    code = "DestinationNotExists"


class Exists(StoreError):
    code = "FileWithTheSameNameExist"


class NotAFolder(StoreError):
    code = "DestinationNotExists"


class IsAFolder(StoreError):
    code = "FileWithTheSameNameExist"


class InvalidName(StoreError):
    code = "InvalidName"


class ReservedName(StoreError):
    code = "ReservedName"


class PermissionDenied(StoreError):
    code = "PermissionDenied"


class QuotaExceeded(StoreError):
    code = "QuotaExceeded"

    def __init__(self, message: str = "User is out of quota") -> None:
        super().__init__(message)
