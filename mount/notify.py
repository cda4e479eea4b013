"""sd_notify(3) without libsystemd: tell systemd we are ready, or stopping.

Under ``Type=notify`` systemd passes ``$NOTIFY_SOCKET`` (a datagram socket,
``@`` for the abstract namespace).  Outside systemd the variable is unset and
every call is a no-op.
"""

from __future__ import annotations

import os
import socket


def notify(*states: str) -> bool:
    """Send ``READY=1``, ``STOPPING=1``, ``STATUS=…``; True if systemd was told."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not states:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(address)
            sock.sendall("\n".join(states).encode())
        except OSError:
            return False
    return True
