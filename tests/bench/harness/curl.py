"""curl as the network peer: what one plain HTTPS transfer to or from the portal takes.

``curl_get`` downloads a WebDAV path to ``/dev/null``; ``curl_upload`` sends a
local file with the portal's multipart upload (the form fields and their
order as the vendor SDK sends them, spec §4.6: the endpoint portalfs uploads
with), ``curl_put`` with a WebDAV ``PUT``.  Each returns (operations, payload
bytes) for :meth:`~tests.bench.harness.meter.Meter.run` and raises when curl
fails.  ``Expect: 100-continue`` is switched off so curl never waits for a
go-ahead the server does not send.
"""

from __future__ import annotations

import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from tests.bench.harness.mounts import USER
from tests.support import portal_http
from tests.support.portal_process import PortalProcess
from wire import ctera_xml

TIMEOUT = 1800


def tls_flags(portal: PortalProcess) -> list[str]:
    return ["--cacert", str(portal.cert)] if portal.cert else ["-k"]


def _curl(arguments: list[str], what: str) -> str:
    result = subprocess.run(["curl", "-s", "-S", "-f", *arguments], capture_output=True, text=True,
                            timeout=TIMEOUT, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}): {result.stderr.strip()} {result.stdout[-500:]}")
    return result.stdout


def curl_get(portal: PortalProcess, path: str) -> tuple[int, int]:
    out = _curl(["-o", "/dev/null", "-w", "%{size_download}", "-u", f"{USER}:{portal.users[USER]}",
                 *tls_flags(portal), portal.url + path], "curl")
    moved = int(out.strip())
    return moved, moved


def curl_put(portal: PortalProcess, source: Path, name: str) -> tuple[int, int]:
    """``curl -T source`` to ``My Files/<name>`` over WebDAV (HTTP Basic)."""
    url = portal.url + portal_http.webdav_url(f"My Files/{name}")
    out = _curl(["-T", str(source), "-H", "Expect:", "-o", "/dev/null", "-w", "%{size_upload}",
                 "-u", f"{USER}:{portal.users[USER]}", *tls_flags(portal), url], "curl PUT")
    moved = int(out.strip())
    return moved, moved


@dataclass
class Uploader:
    """Multipart uploads to alice's ``My Files`` with a session cookie curl logged in for, untimed."""

    portal: PortalProcess
    cookie_jar: Path
    folder_uid: str

    @classmethod
    def logged_in(cls, portal: PortalProcess, cookie_jar: Path) -> Uploader:
        _curl(["-c", str(cookie_jar), "-o", "/dev/null", *tls_flags(portal),
               "--data-urlencode", f"j_username={USER}", "--data-urlencode", f"j_password={portal.users[USER]}",
               f"{portal.url}{portal_http.SERVICES}/api/login"], "curl login")
        with portal_http.logged_in(portal, USER) as http:
            folder = portal_http.stat(http, "My Files")
        info = ctera_xml.as_obj(folder.get("cloudFolderInfo")) if folder else None
        uid = ctera_xml.as_str(info.get("uid")) if info else None
        if not uid:
            raise RuntimeError("no cloudFolderInfo.uid for My Files")
        return cls(portal, cookie_jar, uid)

    def upload(self, source: Path, name: str) -> tuple[int, int]:
        """POST ``source`` as ``My Files/<name>``; the portal replies only once the file is stored."""
        size = source.stat().st_size
        fullpath = self.portal.url + portal_http.webdav_url(f"My Files/{name}")
        fields = [("name", name), ("Filename", name), ("fullpath", fullpath), ("fileSize", str(size))]
        form = [argument for key, value in fields for argument in ("--form-string", f"{key}={value}")]
        url = f"{self.portal.url}{portal_http.SERVICES}/upload/folders/{urllib.parse.quote(self.folder_uid, safe='')}"
        out = _curl(["-b", str(self.cookie_jar), "-H", "Expect:", *tls_flags(self.portal), *form,
                     "-F", f"file=@{source};filename=file;type=application/octet-stream",
                     url], "curl multipart upload")
        answer = ctera_xml.as_obj(ctera_xml.decode(out.encode()))
        if answer is None or ctera_xml.as_int(answer.get("rc")) != 0:
            raise RuntimeError(f"upload refused: {out[:500]}")
        return size, size
