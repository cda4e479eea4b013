"""A mount daemon's status snapshot as text for people (``portalfs status`` without ``--json``).

The snapshot comes from another process, perhaps of another version, and the
user usually asks because something seems wrong: so every key may be
missing or oddly typed, and the renderer prints what it can instead of
failing.  Long lists are cut (``--json`` has everything); sizes are binary
units and times local, as ``ls -lh`` would show them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

LIMIT = 20  # entries shown per list
QUIET_STATES = ("held", "local")  # staged, but not going to the portal by itself


def human_size(size: Any) -> str:
    """``1536`` → ``1.5 KiB``; bytes below 1 KiB exactly."""
    value = _number(size)
    if value is None:
        return "?"
    if abs(value) < 1024:
        return f"{int(value)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if abs(value) < 1024 or unit == "PiB":
            break
    return f"{value:.1f} {unit}"


def human_age(seconds: Any) -> str:
    """``75`` → ``1 min``; ``3900`` → ``1 h 5 min``; coarse on purpose."""
    value = _number(seconds)
    if value is None:
        return "?"
    value = max(int(value), 0)
    if value < 60:
        return f"{value} s"
    if value < 3600:
        return f"{value // 60} min"
    if value < 86400:
        hours, minutes = divmod(value // 60, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(value // 3600, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def local_time(when: Any) -> str:
    value = _number(when)
    if value is None:
        return "?"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
    except (OverflowError, OSError, ValueError):
        return "?"


def waiting_uploads(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The pending entries that will upload by themselves (what ``unmount`` waits for)."""
    return [entry for entry in _entries(_section(status, "uploads").get("pending"))
            if entry.get("state") not in QUIET_STATES]


def total_size(entries: list[dict[str, Any]]) -> int:
    """The sum of the entries' sizes (an entry without a usable size counts 0)."""
    return int(sum(_number(entry.get("size")) or 0 for entry in entries))


def render(status: dict[str, Any]) -> str:
    return "\n".join(_render(status if isinstance(status, dict) else {})) + "\n"


def _render(status: dict[str, Any]) -> Iterator[str]:
    yield _headline(status)
    yield ""
    yield from _uploads(_section(status, "uploads"))
    yield from _events("Conflicts (the portal's version was kept; yours is beside it):",
                       _entries(status.get("conflicts")),
                       lambda entry: f"{_text(entry.get('path'))}  → {_text(entry.get('conflict_path'))}")
    cache = _section(status, "cache")
    if cache:
        yield ""
        yield _cache_line(cache)
    yield from _events("Recent errors:", _entries(status.get("errors")),
                       lambda entry: _text(entry.get("message")))


def _events(title: str, entries: list[dict[str, Any]],
            describe: Callable[[dict[str, Any]], str]) -> Iterator[str]:
    """A titled list of timestamped events, the latest ``LIMIT`` of them (nothing if empty)."""
    if not entries:
        return
    yield ""
    yield title
    if len(entries) > LIMIT:
        yield f"  … {len(entries) - LIMIT} earlier"
    for entry in entries[-LIMIT:]:
        yield f"  {local_time(entry.get('when'))}  {describe(entry)}"


def _headline(status: dict[str, Any]) -> str:
    line = f"portalfs at {_text(status.get('mountpoint'))}"
    if status.get("user") or status.get("portal"):
        line += f": {_text(status.get('user'))} on {_text(status.get('portal'))}"
    if status.get("pid") is not None:
        line += f" (pid {_text(status.get('pid'))})"
    return line


def _uploads(uploads: dict[str, Any]) -> Iterator[str]:
    pending = _entries(uploads.get("pending"))
    in_flight = _entries(uploads.get("in_flight"))
    done = ""
    if uploads.get("uploaded") is not None:
        done = f"{_text(uploads.get('uploaded'))} uploaded ({human_size(uploads.get('bytes_uploaded', 0))}) since mounted"
    if not pending and not in_flight:
        yield "Uploads: nothing pending" + (f"; {done}" if done else "")
        return
    yield f"Uploads: {len(pending)} pending ({human_size(total_size(pending))})" + (f"; {done}" if done else "")
    for entry in pending[:LIMIT]:
        line = (f"  {_text(entry.get('state') or 'pending'):<9} {human_size(entry.get('size')):>10}"
                f"  {human_age(entry.get('age')):>9}  {_text(entry.get('path'))}")
        attempts = _number(entry.get("attempts")) or 0
        if attempts or entry.get("last_error"):
            line += f"  ({int(attempts)} attempts; last error: {_text(entry.get('last_error'))})"
        yield line
    yield from _more_after(pending)
    if in_flight:
        yield "In flight:"
        for entry in in_flight[:LIMIT]:
            size, sent = _number(entry.get("size")), _number(entry.get("sent")) or 0
            share = f" ({100 * sent / size:.0f}%)" if size else ""
            early = " so far, still being written" if entry.get("early") else ""
            yield f"  {_text(entry.get('path'))}: {human_size(sent)} of {human_size(size)}{share}{early}"
        yield from _more_after(in_flight)


def _cache_line(cache: dict[str, Any]) -> str:
    parts = []
    if "memory_bytes" in cache:
        parts.append(f"memory {human_size(cache['memory_bytes'])}")
    if "disk_bytes" in cache:
        limit = f" of {human_size(cache['disk_limit'])}" if cache.get("disk_limit") else ""
        parts.append(f"disk {human_size(cache['disk_bytes'])}{limit}")
    if "staging_bytes" in cache:
        parts.append(f"staged writes {human_size(cache['staging_bytes'])}")
    return "Cache: " + (", ".join(parts) or "?")


def _section(status: dict[str, Any], key: str) -> dict[str, Any]:
    value = status.get(key)
    return value if isinstance(value, dict) else {}


def _entries(value: Any) -> list[dict[str, Any]]:
    """A list's entries as dicts (a bare value is taken as the path or message it probably is)."""
    if not isinstance(value, list):
        return []
    return [entry if isinstance(entry, dict) else {"path": entry, "message": entry} for entry in value]


def _more_after(entries: list[Any]) -> Iterator[str]:
    """Lists of uploads show the first ``LIMIT``: say how many were left out."""
    if len(entries) > LIMIT:
        yield f"  … and {len(entries) - LIMIT} more"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _text(value: Any) -> str:
    return "?" if value is None else str(value)
