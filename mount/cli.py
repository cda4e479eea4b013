"""``portalfs``: the command line.

Sub-commands:

* ``mount URL MOUNTPOINT``  mount a portal (in the background unless ``--foreground``);
* ``unmount MOUNTPOINT``    unmount it;
* ``demo [MOUNTPOINT]``     start the embedded reference portal with sample files and mount it;
* ``serve``, ``snapshot``   run / snapshot the reference portal (``portal.command``).

Passwords never appear in argv, logs or ``ps``: they come from
``--password-file``, ``$PORTALFS_PASSWORD`` or a prompt, and reach a
daemonised child through a pipe.  Failures a user can fix (wrong password,
unreachable host, TLS mismatch, bad mountpoint) are one line on stderr and
exit status 1, not a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import os
import subprocess
import sys
from pathlib import Path

from mount.options import MountOptions, OptionError, default_cache_dir, parse_options, parse_size
from portal import command as portal_command

# The FUSE stack (mount.background → pyfuse3, vfs, cache) is imported only by
# the commands that mount, so `portalfs serve` starts fast and without it.


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    args = parser.parse_args(argv)
    portal_command.configure_logging(args.verbose)
    try:
        if args.command == "serve":
            return portal_command.run_serve(args)
        if args.command == "snapshot":
            return portal_command.run_snapshot(args)
        if args.command == "mount":
            return run_mount(args, argv)
        if args.command == "unmount":
            return run_unmount(args.mountpoint)
        if args.command == "demo":
            from mount.demo import run_demo

            return run_demo(args)
    except OptionError as exc:
        # A wrong mount option is a failed mount (one line, status 1, as mount(8) helpers
        # report it), not a misspelt command line: no usage text.
        print(f"portalfs: {exc}", file=sys.stderr)
        return 1
    parser.error(f"unknown command {args.command}")
    return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portalfs", description="Use a cloud file portal as a local drive.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: every request)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    mount = commands.add_parser("mount", help="mount a portal's cloud drive")
    mount.add_argument("url", help="the portal, e.g. https://portal.example.com")
    mount.add_argument("mountpoint", type=Path)
    add_mount_arguments(mount)

    unmount = commands.add_parser("unmount", help="unmount a portalfs mount")
    unmount.add_argument("mountpoint", type=Path)

    demo = commands.add_parser("demo", help="start the embedded portal with sample files and mount it")
    demo.add_argument("mountpoint", type=Path, nargs="?", help="where to mount (default ~/portalfs-demo)")
    demo.add_argument("--data", type=Path, help="where the demo portal keeps its files")
    demo.add_argument("--no-mount", action="store_true", help="only serve the portal")

    serve = commands.add_parser("serve", help="run the reference portal server")
    portal_command.add_serve_arguments(serve)
    snapshot = commands.add_parser("snapshot", help="snapshot a reference portal's cloud folders now")
    portal_command.add_snapshot_arguments(snapshot)
    return parser


def add_mount_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", "-u", help="portal user name (or -o user=NAME)")
    parser.add_argument("--password-file", type=Path, help="file holding the password (else $PORTALFS_PASSWORD, else a prompt)")
    parser.add_argument("--admin", action="store_true", help="log in to the global administration context")
    parser.add_argument("-o", dest="options", action="append", default=[], metavar="OPTIONS",
                        help="comma-separated mount options (see docs/MOUNT.md)")
    parser.add_argument("--cache-dir", type=Path, help="persistent block cache (default ~/.cache/portalfs/USER@HOST)")
    parser.add_argument("--cache-size", type=parse_size, help="disk cache size, e.g. 10G (default 10G)")
    parser.add_argument("--ca-file", type=Path, help="trust this CA / certificate for the portal's TLS")
    parser.add_argument("--insecure", action="store_true", help="do not verify the portal's TLS certificate (unsafe)")
    parser.add_argument("--foreground", "-f", action="store_true", help="stay in the foreground")
    parser.add_argument("--password-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)


def collect_options(args: argparse.Namespace) -> MountOptions:
    options = parse_options(args.options)
    options.user = args.user or options.user
    options.password_file = args.password_file or options.password_file
    options.admin = args.admin or options.admin
    options.cache_dir = args.cache_dir or options.cache_dir
    options.cache_size = args.cache_size if args.cache_size is not None else options.cache_size
    options.ca_file = args.ca_file or options.ca_file
    options.insecure = args.insecure or options.insecure
    if not options.user:
        raise OptionError("who are you? give --user NAME (or -o user=NAME)")
    return options


def read_password(args: argparse.Namespace, options: MountOptions) -> str:
    if args.password_fd is not None:
        with os.fdopen(args.password_fd, "r", closefd=True) as pipe:
            return pipe.read().rstrip("\n")
    if options.password_file is not None:
        try:
            return options.password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise SystemExit(f"portalfs: cannot read the password file: {exc.strerror}: {options.password_file}")
    if "PORTALFS_PASSWORD" in os.environ:
        return os.environ["PORTALFS_PASSWORD"]
    if sys.stdin.isatty():
        return getpass.getpass(f"Password for {options.user}: ")
    raise SystemExit("portalfs: no password: use --password-file, $PORTALFS_PASSWORD or a terminal")


def run_mount(args: argparse.Namespace, argv: list[str]) -> int:
    """``argv`` is this command line, re-run by the daemon (``mount.portalfs`` translates its own first)."""
    from mount import background

    options = collect_options(args)
    password = read_password(args, options)
    mountpoint = args.mountpoint.resolve()
    problem = background.check_mountpoint(mountpoint)
    if problem:
        print(f"portalfs: {problem}", file=sys.stderr)
        return 1
    if not args.foreground:
        return background.daemonize(argv, password)
    settings = background.settings_from(args.url, mountpoint, options, password,
                                        default_cache_dir(args.url, options.user or ""))
    return background.serve_foreground(settings, ready_fd=args.ready_fd)


def run_unmount(mountpoint: Path) -> int:
    mountpoint = mountpoint.resolve()
    for command in (["fusermount3", "-u", str(mountpoint)], ["umount", str(mountpoint)]):
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            continue
        if result.returncode == 0:
            return 0
        message = result.stderr.strip()
    print(f"portalfs: cannot unmount {mountpoint}: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
