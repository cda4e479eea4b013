"""Mount options (``-o a,b=c``), shared by ``portalfs mount`` and the fstab helper.

One parser serves both, so an fstab line and a command line mean the same.
Options fall in four groups:

* ours: ``user=``, ``password_file=``, ``admin``, ``root=``, ``cache_dir=``,
  ``cache_size=``, ``memory_cache=``, ``read_ahead=``, ``folder_prefetch=``, ``ca_file=``, ``insecure``, the kernel
  cache timeouts ``entry_timeout=``, ``attr_timeout=``, ``negative_timeout=``,
  ``listing_ttl=``, ``request_timeout=``, the network bounds ``connect_timeout=``,
  ``read_timeout=``, ``retry_time=``, ``uid=``/``gid=`` (owner shown), and the
  write-back knobs ``upload_delay=`` (seconds of quiet before an upload),
  ``upload_workers=``, ``early_upload=`` (size at which a file still being
  written starts going up), ``exclude=GLOB`` (repeatable: names kept
  local-only) and ``no_default_excludes``;
* FUSE's: ``allow_other``, ``allow_root``, ``auto_unmount``, ``default_permissions``,
  ``ro``, ``noatime`` … passed to the kernel;
* fstab's bookkeeping, which mount(8) hands to helpers and which mean nothing
  here: ``_netdev``, ``auto``, ``noauto``, ``nofail``, ``user``, ``users``,
  ``defaults``, ``x-*`` (``x-systemd.automount``, ``x-gvfs-notrash`` …);
* anything else is an error, named, rather than a silently ignored typo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

FUSE_FLAGS = frozenset(
    {"allow_other", "allow_root", "auto_unmount", "default_permissions", "ro", "noatime", "nodiratime",
     "relatime", "nosuid", "nodev", "noexec", "exec", "suid", "dev", "sync", "async", "dirsync"}
)
IGNORED = frozenset({"_netdev", "auto", "noauto", "nofail", "user", "users", "owner", "group", "defaults", "rw", "nouser"})
FLOAT_OPTIONS = ("entry_timeout", "attr_timeout", "negative_timeout", "listing_ttl", "request_timeout")
NETWORK_OPTIONS = ("connect_timeout", "read_timeout", "retry_time")


class OptionError(ValueError):
    pass


@dataclass
class MountOptions:
    user: str | None = None
    password_file: Path | None = None
    admin: bool = False
    root: tuple[str, ...] | None = None
    cache_dir: Path | None = None
    cache_size: int | None = None
    memory_cache: int | None = None
    ca_file: Path | None = None
    insecure: bool = False
    uid: int | None = None
    gid: int | None = None
    timeouts: dict[str, float] = field(default_factory=dict)
    network: dict[str, float] = field(default_factory=dict)
    fuse: set[str] = field(default_factory=set)
    upload_delay: float | None = None
    upload_workers: int | None = None
    excludes: list[str] = field(default_factory=list)
    default_excludes: bool = True
    read_ahead: int | None = None
    folder_prefetch: int | None = None
    early_upload: int | None = None


def parse_options(texts: list[str], into: MountOptions | None = None) -> MountOptions:
    """Parse every ``-o`` argument (each comma-separated) into one MountOptions."""
    options = into or MountOptions()
    for text in texts:
        for item in filter(None, (part.strip() for part in text.split(","))):
            _apply(options, item)
    return options


def _apply(options: MountOptions, item: str) -> None:
    name, has_value, value = item.partition("=")
    if name in FUSE_FLAGS and not has_value:
        options.fuse.add(name)
    elif name == "user" and has_value:  # before IGNORED: fstab's bare ``user`` flag is another thing
        options.user = value
    elif name in IGNORED or name.startswith("x-") or name.startswith("comment="):
        return
    elif name == "password_file":
        options.password_file = Path(value)
    elif name == "admin" and not has_value:
        options.admin = True
    elif name == "insecure" and not has_value:
        options.insecure = True
    elif name == "root":
        options.root = tuple(part for part in value.split("/") if part)
    elif name == "cache_dir":
        options.cache_dir = Path(value)
    elif name in ("cache_size", "memory_cache", "read_ahead", "folder_prefetch", "early_upload"):
        try:
            setattr(options, name, parse_size(value))
        except OptionError:
            raise OptionError(f"{name}= wants a size (4096, 512M, 10G), got {value!r}") from None
    elif name == "ca_file":
        options.ca_file = Path(value)
    elif name in ("uid", "gid"):
        setattr(options, name, _number(name, value, int))
    elif name == "upload_delay":
        options.upload_delay = _number(name, value, float)
        if options.upload_delay < 0:
            raise OptionError("upload_delay must not be negative")
    elif name == "upload_workers":
        options.upload_workers = _number(name, value, int)
        if options.upload_workers < 1:
            raise OptionError("upload_workers must be at least 1")
    elif name == "exclude" and has_value:
        if not value or "/" in value:
            raise OptionError(f"exclude= wants a name pattern without '/', got {value!r}")
        options.excludes.append(value)
    elif name == "no_default_excludes" and not has_value:
        options.default_excludes = False
    elif name in FLOAT_OPTIONS or name in NETWORK_OPTIONS:
        seconds = _number(name, value, float)
        if seconds <= 0:
            raise OptionError(f"{name} must be positive")
        (options.timeouts if name in FLOAT_OPTIONS else options.network)[name] = seconds
    else:
        raise OptionError(f"unknown mount option {item!r}")


_N = TypeVar("_N", int, float)


def _number(name: str, value: str, kind: type[_N]) -> _N:
    try:
        return kind(value)
    except ValueError:
        raise OptionError(f"{name}= wants a number, got {value!r}") from None


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``10G``, ``512M``, ``1.5T``, ``4096`` → bytes."""
    cleaned = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = cleaned[-1] if cleaned and cleaned[-1] in _UNITS else ""
    number = cleaned[:-1] if unit else cleaned
    try:
        size = int(float(number) * _UNITS[unit])
    except ValueError:
        raise OptionError(f"not a size: {text!r}") from None
    if size < 0:
        raise OptionError(f"not a size: {text!r}")
    return size


def default_cache_dir(url: str, user: str) -> Path:
    """A cache directory per (portal, user), under ``$XDG_CACHE_HOME``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    host = url.split("://", 1)[-1].split("/", 1)[0].replace(":", "_")
    return Path(base) / "portalfs" / f"{user}@{host}"
