"""``portalfs``: the command line.

Sub-commands:

* ``serve``    run the reference portal (``portal.command``);
* ``snapshot`` snapshot a reference portal's cloud folders now;
* ``demo``     run the embedded reference portal with sample data.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

import trio

from portal import command as portal_command
from portal.server import PortalConfig, Ready, serve

DEMO_USER = "demo"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portalfs", description="Use a cloud file portal as a local drive.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for every request)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve_parser = commands.add_parser("serve", help="run the reference portal server")
    portal_command.add_serve_arguments(serve_parser)
    snapshot_parser = commands.add_parser("snapshot", help="snapshot a reference portal's cloud folders now")
    portal_command.add_snapshot_arguments(snapshot_parser)
    demo_parser = commands.add_parser("demo", help="run the embedded portal with sample files")
    demo_parser.add_argument("--data", type=Path, default=_default_demo_dir(), help="where the demo portal keeps its files")
    demo_parser.add_argument("--port", type=int, default=0, help="port of the demo portal (default: any free one)")

    args = parser.parse_args(argv)
    portal_command.configure_logging(args.verbose)
    if args.command == "serve":
        return portal_command.run_serve(args)
    if args.command == "snapshot":
        return portal_command.run_snapshot(args)
    if args.command == "demo":
        return run_demo(args)
    parser.error(f"unknown command {args.command}")
    return 2


def _default_demo_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "portalfs" / "demo"


def _demo_password(data: Path) -> str:
    """A password made once per demo directory and kept beside it (mode 0600)."""
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = data / "demo-password"
    if not secret.exists():
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(12))
    return secret.read_text().strip()


def run_demo(args: argparse.Namespace) -> int:
    password = _demo_password(args.data)
    config = PortalConfig(
        data_dir=args.data,
        port=args.port,
        users=[(DEMO_USER, password, "EndUser")],
        sample=True,
        snapshot_interval=3600,
    )

    def announce(ready: Ready) -> None:
        print(
            f"portalfs demo portal is serving {ready.url}\n"
            f"  user {DEMO_USER!r}, password in {args.data / 'demo-password'}\n"
            f"  TLS certificate {ready.cert_path} (SHA-256 {ready.fingerprint})\n"
            f"  try: curl -k -u {DEMO_USER}:$(cat {args.data / 'demo-password'}) "
            f"'{ready.url}/ServicesPortal/webdav/My%20Files/Documents/Report.txt'\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )

    try:
        trio.run(lambda: serve(config, on_ready=announce))
    except KeyboardInterrupt:
        print("portalfs demo stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
