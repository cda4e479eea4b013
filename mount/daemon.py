"""The mount daemon: builds the object graph, runs it in one nursery, shuts it down cleanly.

Order of events:

1. log in to the portal (a wrong password, an unreachable host or a TLS
   mismatch ends here with one clear line, before anything is mounted);
2. check the folder to mount exists, open the block cache;
3. mount, list the root once, then report readiness (``READY=1`` to systemd,
   and the ``on_ready`` callback, which the CLI uses to let a daemonising
   parent exit);
4. serve until unmounted from outside (``fusermount3 -u``) or told to stop
   (SIGINT/SIGTERM → ``STOPPING=1``, leave ``pyfuse3.main``);
5. unmount (if still mounted), close the cache, log out.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyfuse3
import trio

from cache import CacheConfig, open_block_cache
from mount.notify import notify
from mount.operations import PortalOperations
from vfs.backends.base import NotFound
from vfs.backends.ctera import Timeouts, open_ctera_backend
from vfs.backends.retry import RetryPolicy
from vfs.filesystem import Filesystem, FsConfig

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


def fuse_options(settings: MountSettings) -> set[str]:
    options = set(pyfuse3.default_options)
    options.discard("default_permissions")
    options |= {"fsname=portalfs", "subtype=portalfs", "default_permissions", "ro", "noatime"}
    options |= set(settings.fuse_options)
    return options


async def run(settings: MountSettings, *, on_ready: Callable[[], None] | None = None) -> None:
    """Mount and serve until unmounted or signalled."""
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
        async with open_block_cache(settings.cache) as cache:
            fs = Filesystem(backend, cache, settings.fs, root_path, root)
            operations = PortalOperations(fs)
            serving = trio.CancelScope()
            with _stop_on_signals(serving):
                pyfuse3.init(operations, str(settings.mountpoint), fuse_options(settings))
                try:
                    with serving:
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(_serve, settings.workers, nursery.cancel_scope)
                            fs.releasedir(await fs.opendir(1))  # the root listing works: we are really ready
                            log.info("mounted %s at %s", "/".join(root_path) or "/", settings.mountpoint)
                            notify("READY=1", f"STATUS=mounted at {settings.mountpoint}")
                            if on_ready:
                                on_ready()
                finally:
                    notify("STOPPING=1")
                    pyfuse3.close(unmount=True)
                    log.info("unmounted %s", settings.mountpoint)


async def _serve(workers: int, scope: trio.CancelScope) -> None:
    """Run pyfuse3's request loop; when it returns (unmounted from outside) stop everything."""
    await pyfuse3.main(min_tasks=4, max_tasks=workers)
    scope.cancel()


@contextmanager
def _stop_on_signals(scope: trio.CancelScope) -> Iterator[None]:
    """While mounted and while unmounting, SIGINT/SIGTERM cancel ``scope``: a clean stop.

    Every signal is absorbed until the unmount is done, so an impatient second
    Ctrl-C (or systemd's SIGTERM after a Ctrl-C) cannot kill the process half-way
    and leave a dead mount.  (``trio.open_signal_receiver`` re-delivers signals
    still pending when its block is left — with the default action, deadly.)
    """
    token = trio.lowlevel.current_trio_token()

    def stop(signum: int) -> None:
        if not scope.cancel_called:
            log.info("received %s, unmounting", signal.Signals(signum).name)
        scope.cancel()

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
