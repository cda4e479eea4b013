"""``portalfs serve`` and ``portalfs snapshot``: the reference portal's command line.

Passwords are read from ``--user NAME:PASSWORD`` (convenient for tests and
demos; visible in ``ps``), from ``--users-file`` (one ``NAME:PASSWORD[:admin]``
per line, ``#`` comments), or both.  Administrators log in to ``/admin``; end
users to ``/ServicesPortal``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import trio

from portal.server import PortalConfig, Ready, serve
from portal.store import Store

DEFAULT_PORT = 8443


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="directory holding the portal's store")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--tls", default="self-signed", metavar="self-signed|CERT,KEY|off",
                        help="TLS: a self-signed certificate made on first start (default), your own, or none")
    parser.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD", help="an end user (repeatable)")
    parser.add_argument("--admin", action="append", default=[], metavar="NAME:PASSWORD",
                        help="a global administrator (repeatable)")
    parser.add_argument("--users-file", type=Path, help="file of NAME:PASSWORD[:admin] lines")
    parser.add_argument("--quota", type=_size, help="per-user quota, e.g. 10G (default: unlimited)")
    parser.add_argument("--snapshot-interval", type=float, metavar="SECONDS",
                        help="snapshot changed cloud folders this often (default: never)")
    parser.add_argument("--session-timeout", type=float, default=1800.0, metavar="SECONDS",
                        help="idle time after which a session expires (default 1800)")
    parser.add_argument("--case-sensitive", action="store_true", help="names differing in case are different files")
    parser.add_argument("--sample", action="store_true", help="seed every end user with a sample tree and history")
    parser.add_argument("--test-hooks", action="store_true", help="enable /portalfs/test/* (expire sessions, snapshot)")
    parser.add_argument("--ready-file", type=Path, help="write {url, cert, fingerprint, pid} here once serving")


def config_from(args: argparse.Namespace) -> PortalConfig:
    users = [(*_credential(text, "--user"), "EndUser") for text in args.user]
    users += [(*_credential(text, "--admin"), "ReadWriteAdmin") for text in args.admin]
    if args.users_file:
        users += _read_users_file(args.users_file)
    return PortalConfig(
        data_dir=args.data,
        host=args.host,
        port=args.port,
        tls=_tls(args.tls),
        users=users,
        quota_bytes=args.quota,
        snapshot_interval=args.snapshot_interval,
        session_timeout=args.session_timeout,
        case_sensitive=args.case_sensitive,
        sample=args.sample,
        test_hooks=args.test_hooks,
        ready_file=args.ready_file,
    )


def run_serve(args: argparse.Namespace) -> int:
    config = config_from(args)

    def announce(ready: Ready) -> None:
        print(f"portalfs reference portal serving {ready.url}", flush=True)
        if ready.cert_path:
            print(f"  TLS certificate {ready.cert_path}", flush=True)
            print(f"  SHA-256 fingerprint {ready.fingerprint}", flush=True)

    try:
        trio.run(lambda: serve(config, on_ready=announce))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"portalfs serve: {exc}", file=sys.stderr)
        return 1
    return 0


def add_snapshot_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="directory holding the portal's store")


def run_snapshot(args: argparse.Namespace) -> int:
    """Snapshot every cloud folder now (safe while the portal is running)."""
    store = Store(args.data)
    try:
        for folder in store.all_cloud_folders():
            snapshot = store.take_snapshot(folder.id, force=True)
            assert snapshot is not None
            print(f"snapshot {snapshot.id} of {folder.owner_name}/{folder.name} at {snapshot.taken_at}")
    finally:
        store.close()
    return 0


def _credential(text: str, option: str) -> tuple[str, str]:
    name, sep, password = text.partition(":")
    if not sep or not name or not password:
        raise SystemExit(f"{option} wants NAME:PASSWORD, got {name or text!r}:…")
    return name, password


def _read_users_file(path: Path) -> list[tuple[str, str, str]]:
    users = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        role = "EndUser"
        if line.endswith(":admin"):
            line, role = line[: -len(":admin")], "ReadWriteAdmin"
        name, sep, password = line.partition(":")
        if not sep or not name or not password:
            raise SystemExit(f"{path}:{number}: expected NAME:PASSWORD[:admin]")
        users.append((name, password, role))
    return users


def _tls(text: str) -> str | tuple[Path, Path]:
    if text in ("self-signed", "off"):
        return text
    cert, sep, key = text.partition(",")
    if not sep:
        raise SystemExit("--tls wants self-signed, off, or CERT,KEY")
    return Path(cert), Path(key)


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _size(text: str) -> int:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = text[-1] if text and text[-1] in _UNITS else ""
    number = text[: -1] if unit else text
    try:
        return int(float(number) * _UNITS[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None


def configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx/httpcore narrate every request at INFO/DEBUG; only -vvv wants that.
    for chatty in ("httpx", "httpcore", "hpack"):
        logging.getLogger(chatty).setLevel(logging.WARNING if verbosity < 3 else logging.DEBUG)
