"""Running a mount in the foreground or as a daemon, with one-line failures.

Daemon mode re-executes ``portalfs mount … --foreground`` as a detached child
(new session, no terminal) instead of forking a process that already runs
threads.  The parent hands the password over a pipe (never argv or the
environment, both visible to other processes of the user), then waits on a
second pipe until the child reports ``ok`` — the mount works and its root
listing succeeded — or a one-line reason; the parent exits 0 or 1
accordingly, so ``portalfs mount`` in a script fails when the mount fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import trio

from cache import CacheConfig
from mount import daemon
from mount.kernel import direct_writes_are_coherent
from mount.options import MountOptions
from vfs.backends import base
from vfs.exclusions import DEFAULT_EXCLUDES
from vfs.filesystem import FsConfig

LOG_NAME = "mount.log"


def check_mountpoint(mountpoint: Path) -> str | None:
    """Why ``mountpoint`` cannot be mounted on, or None."""
    try:
        if not mountpoint.is_dir():
            return f"{mountpoint} is not a directory" if mountpoint.exists() else f"{mountpoint} does not exist"
    except OSError as exc:  # e.g. ENOTCONN: a dead FUSE mount is still there
        return f"{mountpoint}: {exc.strerror} (a stale mount? try: portalfs unmount {mountpoint})"
    if os.path.ismount(mountpoint):
        return f"{mountpoint} is already a mount point"
    return None


def settings_from(url: str, mountpoint: Path, options: MountOptions, password: str, cache_dir: Path) -> daemon.MountSettings:
    cache = CacheConfig(
        disk_dir=options.cache_dir or cache_dir,
        **({"disk_bytes": options.cache_size} if options.cache_size is not None else {}),
        **({"memory_bytes": options.memory_cache} if options.memory_cache is not None else {}),
        **({"group_fetch_bytes": options.folder_prefetch} if options.folder_prefetch is not None else {}),
    )
    fs = FsConfig(
        uid=options.uid if options.uid is not None else os.getuid(),
        gid=options.gid if options.gid is not None else os.getgid(),
        direct_writes=direct_writes_are_coherent(),
        **options.timeouts,
    )
    return daemon.MountSettings(
        url=url.rstrip("/"),
        user=options.user or "",
        password=password,
        mountpoint=mountpoint,
        admin=options.admin,
        root=options.root,
        cache=cache,
        fs=fs,
        fuse_options=frozenset(options.fuse),
        excludes=(*(DEFAULT_EXCLUDES if options.default_excludes else ()), *options.excludes),
        **({"upload_delay": options.upload_delay} if options.upload_delay is not None else {}),
        **({"upload_workers": options.upload_workers} if options.upload_workers is not None else {}),
        **({"early_upload": options.early_upload} if options.early_upload is not None else {}),
        **({"read_ahead": options.read_ahead} if options.read_ahead is not None else {}),
        ca_file=options.ca_file,
        insecure=options.insecure,
        **options.network,
    )


def serve_foreground(settings: daemon.MountSettings, *, ready_fd: int | None = None) -> int:
    """Mount and serve in this process; 0 after a clean unmount, 1 on failure."""

    def ready() -> None:
        if ready_fd is not None:
            os.write(ready_fd, b"ok\n")
            os.close(ready_fd)
            _detach_stdio()
        else:
            print(f"portalfs: mounted {settings.url} at {settings.mountpoint} (Ctrl-C or `portalfs unmount` to stop)",
                  file=sys.stderr, flush=True)

    try:
        trio.run(lambda: daemon.run(settings, on_ready=ready))
    except BaseException as exc:
        # Ctrl-C before the mount was up (once mounted, signals stop it cleanly, status 0); trio
        # may deliver it inside an exception group when it lands in a nursery (open_tcp_stream's).
        if isinstance(exc, KeyboardInterrupt) or (
                isinstance(exc, BaseExceptionGroup) and exc.subgroup(KeyboardInterrupt) is not None):
            print("portalfs: interrupted; nothing mounted", file=sys.stderr)
            return 130
        message = explain(exc, settings)
        if message is None:
            raise
        _report(message, ready_fd)
        return 1
    return 0


def explain(exc: BaseException, settings: daemon.MountSettings) -> str | None:
    """One line for a failure a user can act on; None for a bug (let it show)."""
    if isinstance(exc, base.AuthenticationFailed):
        return f"wrong user name or password for {settings.user!r} at {settings.url}"
    if isinstance(exc, base.Unreachable):
        return f"cannot reach {settings.url}: {exc}"
    if isinstance(exc, base.NotFound):
        return f"the portal has no folder {'/'.join(settings.root or ()) or '/'} for {settings.user!r}"
    if isinstance(exc, base.BackendError):
        return f"{settings.url}: {exc or type(exc).__name__}"
    if isinstance(exc, RuntimeError) and "fuse" in str(exc).lower():
        return f"cannot mount on {settings.mountpoint}: {exc} (is /dev/fuse available, and fuse3 installed?)"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}: {exc.filename or settings.mountpoint}"
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return explain(exc.exceptions[0], settings)
    return None


def _report(message: str, ready_fd: int | None) -> None:
    if ready_fd is not None:
        try:
            os.write(ready_fd, (message + "\n").encode())
            os.close(ready_fd)
            return
        except OSError:
            pass
    print(f"portalfs: {message}", file=sys.stderr)


def _detach_stdio() -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    os.close(devnull)


def own_command(*args: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run this very portalfs again as a child process.

    ``python -m`` would put the working directory first on ``sys.path``, so a
    ``portal.py`` or ``cache/`` where the user happens to stand would shadow
    our packages: ``-P`` leaves it out, and ``PYTHONPATH`` names the directory
    we were imported from.  ``$PORTALFS_PASSWORD`` is not passed on: a
    long-running child's environment is readable in ``/proc`` for its whole life.
    """
    env = {name: value for name, value in os.environ.items() if name != "PORTALFS_PASSWORD"}
    source = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (source, env.get("PYTHONPATH"))))
    return [sys.executable, "-P", "-m", "mount.cli", *args], env


def log_path() -> Path:
    base_dir = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    path = Path(base_dir) / "portalfs"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path / LOG_NAME


def daemonize(argv: list[str], password: str) -> int:
    """Start the mount as a detached child; return when it is ready (0) or has failed (1)."""
    password_read, password_write = os.pipe()
    ready_read, ready_write = os.pipe()
    log_file = log_path()
    command, env = own_command(*argv, "--foreground", "--password-fd", str(password_read),
                               "--ready-fd", str(ready_write))
    with open(log_file, "ab") as log:
        child = subprocess.Popen(
            command,
            env=env,
            pass_fds=(password_read, ready_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    os.close(password_read)
    os.close(ready_write)
    try:
        with os.fdopen(password_write, "w") as pipe:
            pipe.write(password)
        with os.fdopen(ready_read, "r") as pipe:
            answer = pipe.readline().strip()
    except KeyboardInterrupt:
        # Ctrl-C while waiting: the user gave up, so the detached child must not mount
        # behind their back (SIGTERM: it dies while logging in, or unmounts cleanly).
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        print("portalfs: interrupted; nothing mounted", file=sys.stderr)
        return 130
    if answer == "ok":
        return 0
    if not answer:
        code = child.wait(timeout=30)
        answer = f"the mount process ended (status {code}); see {log_file}"
    print(f"portalfs: {answer}", file=sys.stderr)
    return 1
