"""``portalfs``: the command line.

Sub-commands:

* ``mount URL MOUNTPOINT``  mount a portal (in the background unless ``--foreground``);
* ``unmount MOUNTPOINT``    unmount it (waiting until pending uploads are sent, unless ``--no-wait``);
* ``status MOUNTPOINT``     what a mount is doing: pending uploads, conflicts, cache, errors;
* ``undelete PATH``, ``ls --deleted DIR``, ``cp SRC DST``
                            deleted-item recovery and server-side copy, asked of the
                            running daemon over its control socket (``mount.control``);
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
import errno
import getpass
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mount.options import MountOptions, OptionError, default_cache_dir, parse_options, parse_size
from portal import command as portal_command

# The FUSE stack (mount.background → pyfuse3, vfs, cache) is imported only by
# the commands that mount, so `portalfs serve` starts fast and without it; the
# control channel (mount.control: trio, vfs.errors) only by the commands using it.

CONTROL_COMMANDS = ("status", "undelete", "ls", "cp")
POLL_INTERVAL = 0.25  # how often `unmount` asks a draining daemon how far it got
PROGRESS_EVERY = 2.0  # at most one progress line per this many seconds


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
            return run_unmount(args.mountpoint, wait=not args.no_wait)
        if args.command in CONTROL_COMMANDS:
            return run_control_command(args)
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
    unmount.add_argument("--no-wait", action="store_true",
                         help="do not wait for pending uploads (they stay staged and are sent at the next mount)")
    unmount.add_argument("mountpoint", type=Path)

    status = commands.add_parser("status", help="what a mount is doing: pending uploads, conflicts, cache, errors")
    status.add_argument("mountpoint", type=Path)
    status.add_argument("--json", action="store_true", help="print the daemon's snapshot as JSON")
    undelete = commands.add_parser("undelete", help="restore a deleted file or folder of a mount")
    undelete.add_argument("path", type=Path, help="where it was (it need not exist now)")
    ls = commands.add_parser("ls", help="list the deleted items of a folder of a mount (with --deleted)")
    ls.add_argument("--deleted", action="store_true", help="list deleted items (required)")
    ls.add_argument("directory", type=Path, nargs="?", default=Path("."))
    cp = commands.add_parser("cp", help="copy on the portal, within one mount (nothing is downloaded)")
    cp.add_argument("source", type=Path)
    cp.add_argument("target", help="a new name, or an existing folder to copy into")

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


def run_unmount(mountpoint: Path, *, wait: bool = True) -> int:
    """Unmount; a daemon that answers on its control socket is then waited for while it drains its uploads."""
    mountpoint = mountpoint.resolve()
    daemon = _tell_daemon(mountpoint, skip_drain=not wait)
    problem = kernel_unmount(mountpoint)
    if problem is not None:
        print(f"portalfs: cannot unmount {mountpoint}: {problem}", file=sys.stderr)
        return 1
    if daemon and wait:
        try:
            _wait_for_daemon(mountpoint)
        except KeyboardInterrupt:
            print(f"portalfs: unmounted; the daemon keeps uploading in the background "
                  f"(see: portalfs status {mountpoint})", file=sys.stderr)
            return 130
    return 0


def kernel_unmount(mountpoint: Path) -> str | None:
    """``fusermount3 -u`` (else ``umount``); None on success, else why not."""
    message = "neither fusermount3 nor umount is installed"
    for command in (["fusermount3", "-u", str(mountpoint)], ["umount", str(mountpoint)]):
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        except FileNotFoundError:
            continue
        if result.returncode == 0:
            return None
        message = result.stderr.strip()
    return message


def _tell_daemon(mountpoint: Path, *, skip_drain: bool) -> bool:
    """Whether a daemon answers for ``mountpoint`` (told not to drain its uploads if ``skip_drain``)."""
    from mount import control

    try:
        control.ask(mountpoint, {"op": "skip_drain" if skip_drain else "status"}, timeout=10)
        return True
    except control.NoDaemon:
        return False
    except control.ControlError as exc:  # the unmount itself must still happen
        print(f"portalfs: warning: {exc}", file=sys.stderr)
        return False


def _wait_for_daemon(mountpoint: Path) -> None:
    """Poll the daemon, which drains its uploads after the kernel unmount, until it is gone."""
    from mount import control
    from mount.status_text import human_size, total_size, waiting_uploads

    next_line = time.monotonic()
    failures = 0
    while True:
        try:
            status = control.ask(mountpoint, {"op": "status"}, timeout=10)
            failures = 0
        except control.NoDaemon:
            return
        except control.ControlError as exc:
            failures += 1
            if failures >= 3:
                print(f"portalfs: warning: stopped waiting for the daemon: {exc}", file=sys.stderr)
                return
            status = None
        waiting = waiting_uploads(status) if isinstance(status, dict) else []
        if waiting and time.monotonic() >= next_line:
            uploads = "1 upload" if len(waiting) == 1 else f"{len(waiting)} uploads"
            print(f"portalfs: waiting for {uploads} ({human_size(total_size(waiting))}) to finish…",
                  file=sys.stderr, flush=True)
            next_line = time.monotonic() + PROGRESS_EVERY
        time.sleep(POLL_INTERVAL)


def run_control_command(args: argparse.Namespace) -> int:
    """``status``, ``undelete``, ``ls --deleted``, ``cp``: one request to the daemon each."""
    from mount import control

    commands = {"status": _status, "undelete": _undelete, "ls": _list_deleted, "cp": _copy}
    try:
        commands[args.command](args)
    except control.ControlError as exc:
        print(f"portalfs: {exc}", file=sys.stderr)
        return 1
    return 0


def _status(args: argparse.Namespace) -> None:
    from mount import control, status_text

    snapshot = control.ask(args.mountpoint, {"op": "status"})
    if args.json:
        _write(json.dumps(snapshot, indent=2) + "\n")
    else:
        _write(status_text.render(snapshot))


def _undelete(args: argparse.Namespace) -> None:
    from mount import control

    mountpoint, names = control.mount_relative(args.path)
    if not names:
        raise control.ControlError(f"{args.path} is the root of the mount; name something inside it", errno.EINVAL)
    _ask_for(f"cannot undelete {args.path}", mountpoint, {"op": "undelete", "path": list(names)}, timeout=300)


def _list_deleted(args: argparse.Namespace) -> None:
    from mount import control
    from mount.status_text import human_size, local_time

    if not args.deleted:
        raise control.ControlError("portalfs ls lists deleted items only: add --deleted (for the rest, use ls)",
                                   errno.EINVAL)
    mountpoint, names = control.mount_relative(args.directory)
    items = _ask_for(f"cannot list deleted items of {args.directory}", mountpoint,
                     {"op": "list_deleted", "path": list(names)}, timeout=60)
    entries = [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []
    lines = []
    for item in sorted(entries, key=lambda item: str(item.get("name"))):
        suffix = "/" if item.get("is_dir") else ""
        lines.append(f"{human_size(item.get('size')):>10}  {local_time(item.get('mtime'))}  {item.get('name')}{suffix}\n")
    _write("".join(lines))


def _copy(args: argparse.Namespace) -> None:
    from mount import control

    source_mount, source = control.mount_relative(args.source)
    target_mount, target = control.mount_relative(Path(args.target))
    if source_mount != target_mount:
        raise control.ControlError(f"{args.source} and {args.target} are in different mounts "
                                   "(portalfs cp copies within one mount; use cp)", errno.EXDEV)
    if not source:
        raise control.ControlError(f"cannot copy the root of the mount {source_mount}", errno.EINVAL)
    into = target_mount.joinpath(*target)
    if into.is_dir():
        target = (*target, source[-1])
    elif args.target.endswith("/"):
        raise control.ControlError(f"{args.target} is not a folder", errno.ENOTDIR)
    if target[:len(source)] == source:
        raise control.ControlError(f"cannot copy {args.source} into itself", errno.EINVAL)
    _ask_for(f"cannot copy {args.source} to {args.target}", mountpoint=source_mount,
             request={"op": "copy", "source": list(source), "target": list(target)}, timeout=300)


def _ask_for(what: str, mountpoint: Path, request: dict[str, Any], timeout: float) -> Any:
    """``control.ask``, an error reply said as ``what: reason``."""
    from mount import control

    try:
        return control.ask(mountpoint, request, timeout=timeout)
    except control.ErrorReply as exc:
        reason = str(exc)
        if reason in ("", "failed", errno.errorcode.get(exc.errno)):
            reason = os.strerror(exc.errno)
        raise control.ControlError(f"{what}: {reason}", exc.errno) from None


def _write(text: str) -> None:
    """Print names as they are, even ones the terminal's encoding cannot show (no traceback over a name)."""
    encoding = sys.stdout.encoding or "utf-8"
    sys.stdout.write(text.encode(encoding, "backslashreplace").decode(encoding))
    sys.stdout.flush()

if __name__ == "__main__":
    sys.exit(main())
