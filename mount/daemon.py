"""The mount daemon: builds the object graph, runs it in one nursery, shuts it down cleanly.

Order of events:

1. log in to the portal (a wrong password, an unreachable host or a TLS
   mismatch ends here with one clear line, before anything is mounted);
2. check the folder to mount exists, open the block cache and the staging
   area, and start the upload queue — uploads a previous run acknowledged
   but did not finish (``kill -9``, power cut) start now, before the first
   FUSE request;
3. mount, list the root once, then report readiness (``READY=1`` to systemd,
   and the ``on_ready`` callback, which the CLI uses to let a daemonising
   parent exit);
4. serve until unmounted from outside (``fusermount3 -u``) or told to stop
   (SIGINT/SIGTERM → ``STOPPING=1``, leave ``pyfuse3.main``);
5. unmount (if still mounted), then wait for pending uploads, logging
   progress — unless ``portalfs unmount --no-wait`` said not to or another
   signal arrives: the journal keeps them for the next mount;
6. close the caches, log out.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyfuse3
import trio

from cache import CacheConfig, MtimeStore, open_block_cache, open_staging_store
from mount.control import ControlError, control_socket_path, serve_control
from mount.notify import notify
from mount.operations import PortalOperations
from mount.readahead import DEFAULT_READ_AHEAD, set_kernel_read_ahead
from mount.request_loop import RequestWait, install_request_wait, remove_request_wait
from vfs.backends.base import NotFound
from vfs.backends.ctera import Timeouts, open_ctera_backend
from vfs.backends.retry import RetryPolicy
from vfs.early_uploads import EARLY_MIN
from vfs.exclusions import DEFAULT_EXCLUDES, Exclusions
from vfs.filesystem import Filesystem, FsConfig, WriteBack

log = logging.getLogger("mount")

PERSONAL_FOLDER = ("My Files",)


@dataclass
class MountSettings:
    url: str
    user: str
    password: str = field(repr=False)
    mountpoint: Path
    admin: bool = False
    #: the remote folder shown at the mount root; None: "My Files" for end users, the namespace root for admins
    root: tuple[str, ...] | None = None
    cache: CacheConfig = field(default_factory=CacheConfig)
    fs: FsConfig = field(default_factory=FsConfig)
    fuse_options: frozenset[str] = frozenset()
    ca_file: Path | None = None
    insecure: bool = False
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    retry_time: float = 30.0
    workers: int = 32
    #: the kernel's read-ahead window for the mount (mount/readahead.py); 0 leaves the kernel's default
    read_ahead: int = DEFAULT_READ_AHEAD
    upload_delay: float = 2.0
    upload_workers: int = 4
    #: a file being written starts going up once it is this large (0: only once closed)
    early_upload: int = EARLY_MIN
    excludes: tuple[str, ...] = DEFAULT_EXCLUDES

    @property
    def read_only(self) -> bool:
        return "ro" in self.fuse_options

    @property
    def staging_dir(self) -> Path:
        """Where unsent writes are staged: inside the cache directory (which
        ``background.settings_from`` always sets)."""
        assert self.cache.disk_dir is not None, "a mount's cache always has a directory"
        return self.cache.disk_dir / "staging"


def fuse_options(settings: MountSettings) -> set[str]:
    options = set(pyfuse3.default_options)
    options.discard("default_permissions")
    options |= {"fsname=portalfs", "subtype=portalfs", "default_permissions", "noatime"}
    options |= set(settings.fuse_options)
    return options


async def run(settings: MountSettings, *, on_ready: Callable[[], None] | None = None) -> None:
    """Mount and serve until unmounted or signalled.

    A signal before the mount is up (a login that hangs, say) abandons the
    start-up through a cancel scope, so that everything opened so far is
    closed in order, and then raises KeyboardInterrupt ("nothing mounted").
    Left to trio's own SIGINT handling, the KeyboardInterrupt would land at an
    arbitrary point, e.g. half-way into an HTTP library's context manager,
    which then complains on stderr about a coroutine never awaited.
    """
    mounted = False

    def ready() -> None:
        nonlocal mounted
        mounted = True
        if on_ready is not None:
            on_ready()

    starting = trio.CancelScope()
    with _stop_on_signals(starting, actions=("giving up",)), starting:
        await _run(settings, ready)
    if starting.cancelled_caught and not mounted:
        raise KeyboardInterrupt


async def _run(settings: MountSettings, on_ready: Callable[[], None]) -> None:
    async with open_ctera_backend(
        settings.url,
        settings.user,
        settings.password,
        admin=settings.admin,
        ca_file=settings.ca_file,
        insecure=settings.insecure,
        timeouts=Timeouts(connect=settings.connect_timeout, read=settings.read_timeout),
        retry=RetryPolicy(budget=settings.retry_time),
    ) as backend:
        root_path = await _root_path(backend, settings)
        root = await backend.stat(root_path)
        async with open_block_cache(settings.cache) as cache, \
                open_staging_store(settings.staging_dir, block_size=settings.cache.block_size) as store:
            mtimes = await trio.to_thread.run_sync(MtimeStore, settings.staging_dir)
            try:
                writes = None if settings.read_only else WriteBack(
                    store, mtimes, Exclusions(settings.excludes), delay=settings.upload_delay,
                    workers=settings.upload_workers, early_upload=settings.early_upload)
                fs = Filesystem(backend, cache, settings.fs, root_path, root, writes)
                await _mount_and_serve(settings, fs, root_path, on_ready)
            finally:
                mtimes.close()


async def _mount_and_serve(settings: MountSettings, fs: Filesystem, root_path: tuple[str, ...],
                           on_ready: Callable[[], None]) -> None:
    operations = PortalOperations(fs)
    fs.invalidate_entry = lambda folder, name: pyfuse3.invalidate_entry_async(folder, os.fsencode(name),
                                                                              ignore_enoent=True)
    serving, draining = trio.CancelScope(), trio.CancelScope()
    async with trio.open_nursery() as services:
        if fs.uploads is not None:
            await services.start(fs.uploads.run)
            if fs.uploads.pending():
                log.info("resuming %d uploads left by the previous run", fs.uploads.pending())
        control = _DaemonControl(fs, settings)
        await _start_control(services, settings, control)
        with _stop_on_signals(serving, draining):
            pyfuse3.init(operations, str(settings.mountpoint), fuse_options(settings))
            try:
                control.request_wait = install_request_wait()
                with serving:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(_serve, settings.workers, nursery.cancel_scope)
                        fs.releasedir(await fs.opendir(1))  # the root listing works: we are really ready
                        await _tune_kernel(settings)
                        log.info("mounted %s at %s", "/".join(root_path) or "/", settings.mountpoint)
                        notify("READY=1", f"STATUS=mounted at {settings.mountpoint}")
                        on_ready()
            finally:
                notify("STOPPING=1")
                remove_request_wait()
                pyfuse3.close(unmount=True)
                log.info("unmounted %s", settings.mountpoint)
            with draining:
                await _drain(fs)
        services.cancel_scope.cancel()


async def _tune_kernel(settings: MountSettings) -> None:
    """Settings the kernel takes only after its INIT request was answered (mount/readahead.py)."""
    if not settings.read_ahead:
        return
    try:
        # Answered by our own request loop, already running: proof that INIT is done.
        device = (await trio.to_thread.run_sync(os.stat, settings.mountpoint)).st_dev
    except OSError as exc:
        log.info("cannot stat the mountpoint (%s); read-ahead left at the kernel's default", exc)
        return
    set_kernel_read_ahead(device, settings.read_ahead)


class _DaemonControl:
    """What ``portalfs status/undelete/ls/cp/unmount`` ask of this daemon (``mount.control``)."""

    def __init__(self, fs: Filesystem, settings: MountSettings) -> None:
        self.fs = fs
        self.settings = settings
        self.request_wait: RequestWait | None = None
        self.undelete = fs.undelete
        self.list_deleted = fs.list_deleted
        self.copy = fs.copy
        self.skip_drain = fs.skip_drain

    def status(self) -> dict[str, object]:
        immediate = self.request_wait.immediate if self.request_wait is not None else None
        return {"mountpoint": str(self.settings.mountpoint), "pid": os.getpid(), "portal": self.settings.url,
                "user": self.settings.user, **self.fs.status(), "fuse": {"requests_read_at_once": immediate}}


async def _start_control(services: trio.Nursery, settings: MountSettings, control: _DaemonControl) -> None:
    """Serve the control socket until the daemon exits (through the drain, which
    ``portalfs unmount`` watches); without it the mount works, the commands do not."""
    try:
        path = control_socket_path(settings.mountpoint)
        await services.start(serve_control, path, control)
    except (ControlError, OSError) as exc:
        log.warning("no control socket (portalfs status/undelete/cp will not reach this mount): %s", exc)


async def _drain(fs: Filesystem) -> None:
    """Wait for pending uploads after the unmount (the journal keeps whatever is left)."""
    if fs.uploads is None or not fs.drain_on_exit or not fs.uploads.pending():
        return

    def report(count: int, size: int) -> None:
        log.info("waiting for %d uploads (%.1f MiB) to finish; signal again to leave them for the next mount",
                 count, size / (1 << 20))
        notify(f"STATUS=uploading {count} files before stopping")

    await fs.uploads.drain(report=report)
    log.info("all uploads finished")


async def _serve(workers: int, scope: trio.CancelScope) -> None:
    """Run pyfuse3's request loop; when it returns (unmounted from outside) stop everything."""
    await pyfuse3.main(min_tasks=4, max_tasks=workers)
    scope.cancel()


@contextmanager
def _stop_on_signals(*scopes: trio.CancelScope,
                     actions: tuple[str, ...] = ("unmounting", "leaving pending uploads for the next mount"),
                     ) -> Iterator[None]:
    """While mounted and while unmounting, SIGINT/SIGTERM cancel the first of ``scopes``
    not cancelled yet: the first signal stops serving, the next one stops waiting for uploads.

    Every signal is absorbed until the unmount is done, so an impatient second
    Ctrl-C (or systemd's SIGTERM after a Ctrl-C) cannot kill the process half-way
    and leave a dead mount.  (``trio.open_signal_receiver`` re-delivers signals
    still pending when its block is left — with the default action, deadly.)
    """
    token = trio.lowlevel.current_trio_token()

    def stop(signum: int) -> None:
        for number, scope in enumerate(scopes):
            if not scope.cancel_called:
                log.info("received %s, %s", signal.Signals(signum).name, actions[number])
                scope.cancel()
                return

    def handler(signum: int, _frame: object) -> None:
        token.run_sync_soon(stop, signum)  # signal-safe; the log and the cancel run in the event loop

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)


async def _root_path(backend, settings: MountSettings) -> tuple[str, ...]:
    if settings.root is not None:
        return settings.root
    if settings.admin:
        return ()
    try:
        await backend.stat(PERSONAL_FOLDER)
        return PERSONAL_FOLDER
    except NotFound:
        return ()
