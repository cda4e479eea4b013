"""Running the portal: hypercorn on trio, TLS, background services, readiness.

:func:`serve` binds the listening socket itself (so ``port=0`` works and the
real port is known before anyone connects), hands it to hypercorn as
``fd://``, and reports readiness once requests can be served: a line on
stdout and, if asked, a JSON ``ready_file`` that tests and ``portalfs demo``
wait for.

HTTP/1.1 only: hypercorn's HTTP/2 costs several times more CPU per byte, and
the file protocols gain nothing from multiplexing (clients open parallel
connections for parallel ranges).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from portal import tls
from portal.http.app import PortalApp
from portal.http.sessions import SessionTable
from portal.http.tasks import TaskBoard
from portal.store import Store

log = logging.getLogger("portal")


@dataclass
class PortalConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    #: "self-signed", "off", or a (cert, key) pair of paths
    tls: str | tuple[Path, Path] = "self-signed"
    #: (name, password, role) for every account to create or update at start
    users: list[tuple[str, str, str]] = field(default_factory=list)
    quota_bytes: int | None = None
    snapshot_interval: float | None = None
    session_timeout: float = 1800.0
    case_sensitive: bool = False
    sample: bool = False
    test_hooks: bool = False
    ready_file: Path | None = None


@dataclass(frozen=True)
class Ready:
    url: str
    cert_path: Path | None
    fingerprint: str | None

    def as_json(self) -> str:
        return json.dumps(
            {"url": self.url, "cert": str(self.cert_path) if self.cert_path else None,
             "fingerprint": self.fingerprint, "pid": os.getpid()}
        )


def open_store(config: PortalConfig) -> Store:
    store = Store(config.data_dir, case_sensitive=config.case_sensitive)
    for name, password, role in config.users:
        store.set_user(name, password, role=role, quota_bytes=config.quota_bytes if role == "EndUser" else None)
    if config.sample:
        from portal.sample import seed

        seed(store)
    return store


async def serve(
    config: PortalConfig,
    *,
    task_status: trio.TaskStatus[Ready] = trio.TASK_STATUS_IGNORED,
    on_ready: Callable[[Ready], None] | None = None,
) -> None:
    """Serve until cancelled."""
    store = open_store(config)
    if not store.users():
        store.close()
        raise SystemExit("the portal has no accounts: add one with --user NAME:PASSWORD")
    listener = socket.create_server((config.host, config.port), family=_family(config.host), backlog=128)
    hyper = Config()
    hyper.bind = [f"fd://{listener.fileno()}"]
    hyper.alpn_protocols = ["http/1.1"]
    hyper.accesslog = None
    hyper.errorlog = logging.getLogger("portal.hypercorn")
    hyper.keep_alive_timeout = 75.0
    hyper.graceful_timeout = 2.0
    certificate: tls.Certificate | None = None
    if config.tls == "self-signed":
        certificate = tls.self_signed(config.data_dir / "tls", config.host)
    elif isinstance(config.tls, tuple):
        certificate = tls.Certificate(Path(config.tls[0]), Path(config.tls[1]))
    if certificate is not None:
        hyper.certfile, hyper.keyfile = str(certificate.cert_path), str(certificate.key_path)
    port = listener.getsockname()[1]
    scheme = "https" if certificate else "http"
    host = f"[{config.host}]" if ":" in config.host else config.host
    ready = Ready(f"{scheme}://{host}:{port}", certificate.cert_path if certificate else None,
                  certificate.fingerprint if certificate else None)
    try:
        async with trio.open_nursery() as nursery:
            app = PortalApp(store, SessionTable(store, idle_timeout=config.session_timeout), TaskBoard(nursery),
                            test_hooks=config.test_hooks)
            await nursery.start(_run_hypercorn, app, hyper)
            if config.snapshot_interval:
                nursery.start_soon(_snapshot_schedule, store, config.snapshot_interval)
            if config.ready_file:
                _write_atomically(config.ready_file, ready.as_json())
            if on_ready:
                on_ready(ready)
            task_status.started(ready)
    finally:
        listener.close()
        store.close()


async def _run_hypercorn(app: PortalApp, hyper: Config, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    await hypercorn_serve(app, hyper, task_status=task_status)  # type: ignore[arg-type]


async def _snapshot_schedule(store: Store, interval: float) -> None:
    """Snapshot every changed cloud folder every ``interval`` seconds."""
    while True:
        await trio.sleep(interval)
        for folder in store.all_cloud_folders():
            taken = store.take_snapshot(folder.id)
            if taken:
                log.info("snapshot %d of cloud folder %d (%s)", taken.id, folder.id, folder.name)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
