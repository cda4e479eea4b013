"""The CTERA Portal "Cloud Drive" client (spec: ../shared/protocols/ctera-portal.md).

One concept per module:

==================  ==========================================================
``client``          :class:`CteraBackend` and :func:`open_ctera_backend`
``session``         login, the session cookie, transparent re-login on expiry
``connection``      the httpx client: TLS trust, timeouts, pool
``resources``       ``fetchResources`` replies → ``RemoteEntry`` (hostile input refused)
``downloads``       ranged reads with ETag binding and stale-version detection
``archives``        several small files of one folder as one ZIP
``snapshots``       ``listSnapshots`` replies → ``SnapshotRef``
``uploads``         multipart uploads, streamed
``cloud_folders``   the cloud folder uids that uploads and ZIPs are addressed to
``changes``         mkdir, move, copy, delete, the recycle bin
``tasks``           background tasks: submit, poll, outcome
``execute``         the ``execute`` envelope of every file-browser method
``quota``           RFC 4331 quota via ``PROPFIND``
``paths``           tuples of names ⇄ percent-encoded hrefs
``errors``          HTTP statuses, in-band codes, upload refusals, failed tasks,
                    transport failures → ``BackendError``
``counters``        ``statistics()``
==================  ==========================================================
"""

from vfs.backends.ctera.client import CteraBackend, open_ctera_backend
from vfs.backends.ctera.connection import Timeouts
from vfs.backends.ctera.counters import CteraStatistics, RequestKind

__all__ = ["CteraBackend", "CteraStatistics", "RequestKind", "Timeouts", "open_ctera_backend"]
