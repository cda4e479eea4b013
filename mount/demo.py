"""``portalfs demo``: the embedded reference portal with sample files, mounted.

One command shows the whole product: it starts ``portalfs serve --sample`` as
a child process (its own core, its own event loop) on a free loopback port,
waits until it serves, mounts it in the foreground with the demo account, and
on Ctrl-C (or ``portalfs unmount``) unmounts and stops the portal.  The demo
portal keeps its files between runs (``--data``); its password is made once
and kept beside them, mode 0600.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mount import background
from mount.options import MountOptions

DEMO_USER = "demo"


def _data_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "portalfs" / "demo"


def demo_password(data: Path) -> str:
    """The demo account's password, made once per demo directory."""
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = data / "demo-password"
    if not secret.exists():
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(12))
    return secret.read_text().strip()


def run_demo(args: argparse.Namespace) -> int:
    data: Path = (args.data or _data_home()).resolve()
    password = demo_password(data)
    mountpoint: Path = (args.mountpoint or Path.home() / "portalfs-demo").resolve()
    users_file = data / "users"
    users_file.write_text(f"{DEMO_USER}:{password}\n")
    users_file.chmod(0o600)
    with tempfile.TemporaryDirectory(prefix="portalfs-demo-") as scratch:
        ready_file = Path(scratch) / "ready.json"
        command, env = background.own_command(
            "serve", "--data", str(data / "store"), "--port", "0" if not args.no_mount else "8443",
            "--users-file", str(users_file), "--sample", "--snapshot-interval", "3600", "--ready-file", str(ready_file))
        print("portalfs demo: starting the reference portal (the first start seeds sample files)…", flush=True)
        portal = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            info = _wait_ready(portal, ready_file)
            print(f"portalfs demo: portal at {info['url']} (user {DEMO_USER}, password in {data / 'demo-password'})")
            if args.no_mount:
                print("portalfs demo: serving only; Ctrl-C to stop.", flush=True)
                return portal.wait()
            return _mount(info, password, mountpoint, data)
        except KeyboardInterrupt:
            return 0
        finally:
            if portal.poll() is None:
                portal.send_signal(signal.SIGTERM)
                try:
                    portal.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    portal.kill()
                    portal.wait()
            print("portalfs demo: stopped.", flush=True)


def _wait_ready(portal: subprocess.Popen, ready_file: Path, timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while not ready_file.exists():
        if portal.poll() is not None:
            raise SystemExit(f"portalfs demo: the portal exited with status {portal.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit("portalfs demo: the portal did not start in time")
        time.sleep(0.1)
    return json.loads(ready_file.read_text())


def _mount(info: dict, password: str, mountpoint: Path, data: Path) -> int:
    mountpoint.mkdir(parents=True, exist_ok=True)
    problem = background.check_mountpoint(mountpoint)
    if problem:
        print(f"portalfs demo: {problem}", file=sys.stderr)
        return 1
    options = MountOptions(user=DEMO_USER, ca_file=Path(info["cert"]) if info.get("cert") else None)
    settings = background.settings_from(info["url"], mountpoint, options, password, data / "cache")
    print(f"portalfs demo: mounting at {mountpoint} — try: ls -l {mountpoint}; ls {mountpoint}/.snapshots\n"
          f"portalfs demo: press Ctrl-C (or run `portalfs unmount {mountpoint}`) to stop.", flush=True)
    return background.serve_foreground(settings)
