"""Every CTERA failure, translated into the ``BackendError`` tree in one place.

Three kinds of failure reach a client, and each has its table here:

* **HTTP statuses** (:data:`STATUS_ERRORS`).  404 is ``NotFound``, 401/403
  ``PermissionDenied`` (the session layer has already ruled out an expired
  session), 409 ``Exists``, 412 ``StaleVersion``, 400/422 ``InvalidName``,
  507 ``QuotaExceeded``, any status not listed ``ProtocolError``,
  502/503/504 ``Transient``.  A 500 is ``Transient`` only for idempotent
  requests: a read that crashed the server may work the second time, a write
  that crashed it may already have happened.  429 and 503 carrying
  ``Retry-After`` become :class:`~vfs.backends.retry.RetryLater`.
* **In-band error codes** of execute methods (:data:`CODE_ERRORS`):
  ``errorType`` of ``fetchResources`` and the scalar codes of
  ``makeCollection`` (spec §4.2, §4.7).
* **In-band upload refusals** (:func:`upload_error`): the ``msg`` of an
  upload reply whose ``rc`` is not 0 (spec §4.6, §10.2).  The vendor SDK
  tells them apart by message text, and so do we; the reference portal also
  puts the store's error code first (``InvalidName: …``).
* **Failed background tasks** (:func:`task_error`): ``errorType`` and
  ``progstring`` of a terminal task status (spec §5.3).
* **Transport failures** (:func:`from_transport`): httpx exceptions, and
  (:func:`from_socket_error`) those of the blocking transport for content.  A
  connection that could not be made is :class:`Unreachable`, with a one-line
  reason that tells the three common causes apart (refused, name not
  resolved, TLS verification failed), because "could not connect" is useless
  to someone staring at a failed mount.  Timeouts and resets after the
  connection was made are plain :class:`Transient`.

The error body of a non-2xx reply is the portal's ``{rc, msg}`` object (spec
§3.4); its ``msg`` is appended to the message when present.  Messages never
contain credentials: the request body is never quoted.
"""

from __future__ import annotations

import email.utils
import http.client
import re
import socket
import ssl
import time
from collections.abc import Iterator

import httpx

from vfs.backends.base import (
    BackendError,
    Exists,
    InvalidName,
    IsADirectory,
    NotFound,
    PermissionDenied,
    ProtocolError,
    QuotaExceeded,
    ReadOnly,
    StaleVersion,
    Transient,
    Unreachable,
)
from vfs.backends.retry import RetryLater
from wire import ctera_xml

__all__ = [
    "CODE_ERRORS",
    "STATUS_ERRORS",
    "error_for_code",
    "error_for_status",
    "from_socket_error",
    "from_transport",
    "retry_after_seconds",
    "task_error",
    "upload_error",
]

#: Status → error class for any request.  500 is special-cased (idempotency).
STATUS_ERRORS: dict[int, type[BackendError]] = {
    400: InvalidName,
    401: PermissionDenied,
    403: PermissionDenied,
    404: NotFound,
    409: Exists,
    410: NotFound,
    412: StaleVersion,
    422: InvalidName,
    429: Transient,
    502: Transient,
    503: Transient,
    504: Transient,
    507: QuotaExceeded,
}

#: In-band codes (``errorType`` of listings, scalar replies of makeCollection).
CODE_ERRORS: dict[str, type[BackendError]] = {
    "DestinationNotExists": NotFound,
    "FileWithTheSameNameExist": Exists,
    "ReservedName": InvalidName,
    "InvalidName": InvalidName,
    "PermissionDenied": PermissionDenied,
    "ReadOnly": ReadOnly,
    "Conflict": Exists,
}

#: Longest error body we read to find a reason (they are a few hundred bytes).
MAX_ERROR_BODY = 16 << 10


def error_for_status(
    status: int,
    *,
    what: str,
    body: bytes = b"",
    headers: httpx.Headers | None = None,
    idempotent: bool = True,
) -> BackendError:
    """The error for a non-2xx reply to the request described by ``what``."""
    reason = _reason(body)
    message = f"{what}: HTTP {status}" + (f" ({reason})" if reason else "")
    retry_after = retry_after_seconds(headers.get("retry-after")) if headers is not None else None
    if status in (429, 503) and retry_after is not None:
        return RetryLater(message, retry_after)
    if status == 500:
        return Transient(message) if idempotent else ProtocolError(message)
    cls = STATUS_ERRORS.get(status)
    if cls is None:
        cls = Transient if 500 <= status < 600 and idempotent else ProtocolError
    return cls(message)


def error_for_code(code: str, *, what: str) -> BackendError:
    """The error for an in-band error code; unknown codes are protocol errors."""
    cls = CODE_ERRORS.get(code, ProtocolError)
    return cls(f"{what}: {code}")


#: ``msg`` prefixes of refused uploads (spec §4.6), checked in order.
UPLOAD_MESSAGES: tuple[tuple[str, type[BackendError]], ...] = (
    ("Rejected by Cloud Drive policy rule", PermissionDenied),
    ("Illegal access to NTACL folder", PermissionDenied),
    # The portal's storage back end is down or full: worth another attempt later.
    ("No available storage location", Transient),
    ("Resource does not exist", NotFound),
)
_LEADING_CODE = re.compile(r"^([A-Za-z]+)\b")
_READ_ONLY = re.compile(r"read[- ]only|cannot upload to the root", re.IGNORECASE)


def upload_error(msg: str, *, what: str) -> BackendError:
    """The error for an upload reply with ``rc`` ≠ 0 and this ``msg``.

    A message starting with an in-band code is mapped like that code, except
    that a name taken by a *folder* (an existing file just gets a new version)
    is :class:`IsADirectory`.
    """
    text = msg.strip()
    message = f"{what}: {text[:300] or 'refused without a reason'}"
    if text.lower().endswith("is out of quota"):  # User / Folder / Portal is out of quota
        return QuotaExceeded(message)
    for prefix, cls in UPLOAD_MESSAGES:
        if text.startswith(prefix):
            return cls(message)
    code = _LEADING_CODE.match(text)
    if code is not None and code.group(1) == "FileWithTheSameNameExist":
        return IsADirectory(message)
    if code is not None and code.group(1) in CODE_ERRORS and code.group(1) != "Conflict":
        return CODE_ERRORS[code.group(1)](message)
    if _READ_ONLY.search(text):
        return ReadOnly(message)
    return ProtocolError(message)


#: ``progstring`` of a copy/move whose source vanished: ``Resource, <path> , doesn't exist.``
_MISSING_SOURCE = re.compile(r"^\s*Resource,.*,\s*doesn't exist\.?\s*$", re.DOTALL)


def task_error(status: str, error_type: str | None, progstring: str, *, what: str) -> BackendError | None:
    """The error a terminal background task reports, or None for ``completed``.

    ``failed`` and ``completed with warnings`` are failures (spec §5.3), and so
    are ``stopped`` and ``disabled``, which the vendor SDK returns silently:
    for a filesystem an operation that did not happen did not succeed.
    """
    if status == "completed":
        return None
    detail = progstring.strip()[:300] or error_type or "no details"
    message = f"{what}: the portal's task ended {status!r} ({detail})"
    if error_type == "Conflict":
        return Exists(message)
    if _MISSING_SOURCE.match(progstring):
        return NotFound(message)
    if progstring.strip() == "DestinationNotExists":
        return NotFound(message)
    if error_type in CODE_ERRORS:
        return CODE_ERRORS[error_type](message)
    return ProtocolError(message)


def _reason(body: bytes) -> str | None:
    """The ``msg`` of an ``{rc, msg}`` error body, if the body is one."""
    if not body or len(body) > MAX_ERROR_BODY:
        return None
    try:
        value = ctera_xml.as_obj(ctera_xml.decode(body))
        msg = ctera_xml.as_str(value.get("msg")) if value is not None else None
    except ctera_xml.XmlDecodeError:
        return None
    return msg.strip()[:200] if msg else None


def retry_after_seconds(header: str | None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header (delta or HTTP date)."""
    if not header:
        return None
    text = header.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


# --------------------------------------------------------------- transport


def from_transport(exc: httpx.TransportError, *, what: str, url: str) -> Transient:
    """The error for an httpx transport failure while doing ``what`` at ``url``."""
    if isinstance(exc, (httpx.ConnectTimeout, httpx.ConnectError)):
        return _not_connected(url, exc)
    if isinstance(exc, httpx.TimeoutException):
        return _no_answer(what, exc)
    if isinstance(exc, httpx.ProxyError):
        return Unreachable(f"cannot connect to {url} through the proxy: {exc}")
    return _lost(what, exc)


def from_socket_error(exc: OSError | http.client.HTTPException, *, what: str, url: str,
                      connecting: bool) -> Transient:
    """The error for a failure of the blocking transport (``http.client``, see
    :mod:`~.bulk`) while doing ``what`` at ``url``; ``connecting``: while making
    the connection (TCP and TLS set-up), else once connected.  Worded as
    :func:`from_transport` words the same failure seen through httpx."""
    if connecting:
        return _not_connected(url, exc)
    if isinstance(exc, TimeoutError):
        return _no_answer(what, exc)
    if isinstance(exc, http.client.IncompleteRead) and exc.expected is not None:
        return Transient(f"{what}: the portal closed the connection {exc.expected} bytes before the body's end")
    return _lost(what, exc)


def _not_connected(url: str, exc: BaseException) -> Unreachable:
    if isinstance(exc, (httpx.ConnectTimeout, TimeoutError)):
        return Unreachable(f"cannot connect to {url}: connection timed out")
    return Unreachable(f"cannot connect to {url}: {connect_failure_reason(exc)}")


def _no_answer(what: str, exc: BaseException) -> Transient:
    return Transient(f"{what}: {type(exc).__name__} (the portal did not answer in time)")


def _lost(what: str, exc: BaseException) -> Transient:
    return Transient(f"{what}: {type(exc).__name__}: {exc or 'connection lost'}")


def connect_failure_reason(exc: BaseException) -> str:
    """A one-line reason telling refused, unresolvable and untrusted apart."""
    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = cause.verify_message or str(cause)
            return f"TLS certificate verification failed ({detail}); pass the portal's CA with ca_file"
    for cause in causes:
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed ({cause.reason or cause})"
    for cause in causes:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (is the portal running on that port?)"
    for cause in causes:
        if isinstance(cause, socket.gaierror):
            return f"host name not resolved ({cause.strerror or cause})"
    for cause in causes:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
    return str(exc) or type(exc).__name__


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and the members of exception groups, once each."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)
