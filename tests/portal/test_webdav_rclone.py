"""A stock WebDAV client against the portal: Debian's ``rclone``, unmodified.

rclone is configured purely through its environment (an on-the-fly
``:webdav:`` remote, ``vendor=other``) and trusts exactly the portal's own
certificate.  Everything it lists, reads and writes is checked against the
other protocols — the CTERA API (``fetchResources``, multipart upload) and
plain ``GET`` — so the two views of one namespace must agree, including for
names with spaces, ``&``, ``#``, ``%`` and non-ASCII letters.  Every rclone run
has a timeout.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.portal.test_webdav import dav_client, found, parse_multistatus, prop_request, propfind, url
from tests.support import portal_http as ph
from tests.support.portal_process import PortalProcess, run, running_portal
from wire import ctera_xml
from wire.ctera_xml import obj

RCLONE = shutil.which("rclone")
pytestmark = pytest.mark.skipif(RCLONE is None, reason="rclone is not installed (./dev installs it)")

ODD_FILES = {
    "plain.txt": b"plain\n",
    "a b & c #1 %20.txt": b"spaces, ampersand, hash, percent\n",
    "résumé naïve café.txt": "non-ASCII ✓\n".encode(),
    "日本語/ファイル #2.txt": b"nested, in a non-ASCII folder\n",
    "deep/er & deeper/100%.bin": random.Random(1).randbytes(3 * (1 << 20) + 17),
}


class Rclone:
    """``rclone`` with a throw-away config and a ``:webdav:`` remote for one user."""

    def __init__(self, portal: PortalProcess, user: str, workdir: Path) -> None:
        assert RCLONE is not None and portal.cert is not None
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "rclone.conf"
        config.touch()
        obscured = run([RCLONE, "obscure", portal.users[user]], timeout=30).stdout.decode().strip()
        self.cert = portal.cert
        self.env = {
            **os.environ,
            "RCLONE_CONFIG": str(config),
            "RCLONE_CACHE_DIR": str(workdir / "cache"),
            "RCLONE_WEBDAV_URL": f"{portal.url}/ServicesPortal/webdav",
            "RCLONE_WEBDAV_VENDOR": "other",
            "RCLONE_WEBDAV_USER": user,
            "RCLONE_WEBDAV_PASS": obscured,
        }

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        assert RCLONE is not None
        command = [RCLONE, "--ca-cert", str(self.cert), "--retries", "1", "--low-level-retries", "1",
                   "--contimeout", "10s", "--timeout", "60s", *args]
        result = run(command, env=self.env, timeout=180)
        if ok:
            assert result.returncode == 0, f"{args}: {result.stderr.decode(errors='replace')}"
        return result

    def lines(self, *args: str) -> list[str]:
        return self(*args).stdout.decode().splitlines()


def remote(path: str) -> str:
    return f":webdav:{path}"


def api_listing(http: httpx.Client, path: str, *, include_deleted: bool = False) -> dict[str, ctera_xml.Obj]:
    param = obj("FetchResourcesParam", root=ph.href(path), depth="1", start="0", limit="1000", includeDeleted=include_deleted)
    answer = ctera_xml.as_obj(ph.call(http, "fetchResources", param))
    assert answer is not None
    return {ctera_xml.as_str(e.get("name")) or "": e for e in ctera_xml.iter_objs(answer.get("items"))}


@pytest.fixture
def sample_rclone(sample_portal: PortalProcess, tmp_path: Path) -> Rclone:
    return Rclone(sample_portal, "alice", tmp_path / "rclone")


@pytest.fixture
def api(sample_portal: PortalProcess) -> Iterator[httpx.Client]:
    with ph.logged_in(sample_portal) as client:
        yield client


# ------------------------------------------------------------------ reading


def test_rclone_lists_what_the_ctera_api_lists(sample_rclone: Rclone, api: httpx.Client) -> None:
    for folder in ("My Files", "My Files/Documents", "My Files/Photos"):
        entries = sample_rclone.lines("lsf", remote(folder))
        expected = api_listing(api, folder)
        assert sorted(entry.rstrip("/") for entry in entries) == sorted(expected), folder
        for entry in entries:
            assert entry.endswith("/") == bool(ctera_xml.as_bool(expected[entry.rstrip("/")].get("isFolder")))
    sizes = {e["Path"]: e["Size"] for e in json.loads(sample_rclone("lsjson", remote("My Files/Documents")).stdout)}
    assert sizes == {name: ctera_xml.as_int(info.get("size")) for name, info in api_listing(api, "My Files/Documents").items()}
    assert sorted(sample_rclone.lines("lsf", "-R", remote("My Files/Projects"))) == [
        "Apollo/", "Apollo/Design/", "Apollo/Design/diagram.png", "Apollo/Design/spec.md",
    ]
    assert len(sample_rclone.lines("lsf", remote("My Files/Many files"))) == 3000


def test_rclone_reads_the_bytes_get_serves(sample_portal: PortalProcess, sample_rclone: Rclone, tmp_path: Path) -> None:
    with dav_client(sample_portal) as dav:
        for path in ("My Files/Documents/q1 & q2 résumé #1.txt", "My Files/Large files/large-1.bin"):
            expected = dav.get(url(path)).content
            assert sample_rclone("cat", remote(path)).stdout == expected, path
        target = tmp_path / "projects"
        sample_rclone("copy", remote("My Files/Projects"), str(target))
        for local in (target / "Apollo" / "Design").iterdir():
            assert local.read_bytes() == dav.get(url(f"My Files/Projects/Apollo/Design/{local.name}")).content


def test_rclone_about_shows_the_rfc_4331_quota(sample_portal: PortalProcess, sample_rclone: Rclone) -> None:
    about = json.loads(sample_rclone("about", "--json", remote("My Files")).stdout)
    with dav_client(sample_portal) as dav:
        body = prop_request("quota-used-bytes", "quota-available-bytes")
        props = parse_multistatus(propfind(dav, "My Files", "0", body=body))[url("My Files", folder=True)]
    assert about["used"] == int(found(props, "quota-used-bytes").text or "")
    assert about["free"] > 0


# ------------------------------------------------------------------ writing


def _write_tree(root: Path) -> None:
    for relative, content in ODD_FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def test_rclone_round_trip_with_odd_names(portal: PortalProcess, tmp_path: Path) -> None:
    rclone = Rclone(portal, "alice", tmp_path / "rclone")
    local = tmp_path / "local"
    _write_tree(local)
    rclone("copy", str(local), remote("My Files/up & down #1"))
    rclone("check", "--download", str(local), remote("My Files/up & down #1"))

    with ph.logged_in(portal) as api, dav_client(portal) as dav:
        # What rclone wrote, the CTERA API lists and GET serves.
        assert set(api_listing(api, "My Files")) == {"up & down #1"}
        assert set(api_listing(api, "My Files/up & down #1")) == {"plain.txt", "a b & c #1 %20.txt", "résumé naïve café.txt", "日本語", "deep"}
        for relative, content in ODD_FILES.items():
            got = dav.get(url(f"My Files/up & down #1/{relative}"))
            assert got.status_code == 200 and hashlib.sha256(got.content).digest() == hashlib.sha256(content).digest()
        listed = parse_multistatus(propfind(dav, "My Files/up & down #1/日本語"))
        assert url("My Files/up & down #1/日本語/ファイル #2.txt") in listed

        # mkdir, moveto, deletefile, as the CTERA API sees them.
        rclone("mkdir", remote("My Files/up & down #1/empty dir é"))
        identity = ctera_xml.as_int(api_listing(api, "My Files/up & down #1")["a b & c #1 %20.txt"].get("fileId"))
        rclone("moveto", remote("My Files/up & down #1/a b & c #1 %20.txt"), remote("My Files/up & down #1/deep/moved & renamed #2.txt"))
        rclone("deletefile", remote("My Files/up & down #1/plain.txt"))
        top = api_listing(api, "My Files/up & down #1")
        assert set(top) == {"résumé naïve café.txt", "日本語", "deep", "empty dir é"}
        moved = api_listing(api, "My Files/up & down #1/deep")["moved & renamed #2.txt"]
        assert ctera_xml.as_int(moved.get("fileId")) == identity, "a WebDAV MOVE keeps the file's identity"
        deleted = api_listing(api, "My Files/up & down #1", include_deleted=True)["plain.txt"]
        assert ctera_xml.as_bool(deleted.get("isDeleted")), "deletefile goes to the recycle bin"

        # A file uploaded with the CTERA API is an ordinary file to rclone.
        ph.put(api, portal, "My Files/up & down #1/via the api #3.txt", b"uploaded by the CTERA API\n")
    assert rclone("cat", remote("My Files/up & down #1/via the api #3.txt")).stdout == b"uploaded by the CTERA API\n"

    back = tmp_path / "back"
    rclone("copy", remote("My Files/up & down #1"), str(back))
    got = sorted(str(p.relative_to(back)) for p in back.rglob("*") if p.is_file())
    assert got == sorted(["résumé naïve café.txt", "日本語/ファイル #2.txt", "deep/er & deeper/100%.bin",
                          "deep/moved & renamed #2.txt", "via the api #3.txt"])
    assert (back / "deep/er & deeper/100%.bin").read_bytes() == ODD_FILES["deep/er & deeper/100%.bin"]
    assert (back / "deep/moved & renamed #2.txt").read_bytes() == ODD_FILES["a b & c #1 %20.txt"]


def test_rclone_sees_refusals_and_the_server_keeps_serving(tmp_path: Path) -> None:
    with running_portal(tmp_path / "data", "--quota", "100000") as portal:
        rclone = Rclone(portal, "alice", tmp_path / "rclone")
        big = tmp_path / "big"
        big.mkdir()
        (big / "too big.bin").write_bytes(b"x" * 200_000)
        (big / "fits.txt").write_bytes(b"fits")
        failed = rclone("copy", str(big), remote("My Files/big"), ok=False)
        assert failed.returncode != 0
        assert b"507" in failed.stderr or b"Insufficient Storage" in failed.stderr, failed.stderr
        assert rclone.lines("lsf", remote("My Files/big")) == ["fits.txt"]
        assert rclone("mkdir", remote("top level folder"), ok=False).returncode != 0, "the root is read-only"
        assert rclone.lines("lsf", remote("")) == ["My Files/"]
