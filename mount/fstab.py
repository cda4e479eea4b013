"""``mount.portalfs``: the helper mount(8) runs for fstab entries of type ``portalfs``.

mount(8) calls ``/sbin/mount.portalfs SPEC DIR [-sfnv] [-N NS] [-o OPTIONS] [-t TYPE]``
(see mount(8), "External helpers").  For us SPEC is the portal's URL, and
the options are portalfs mount options (``user=``, ``password_file=`` …; see
:mod:`mount.options`), so this fstab line::

    https://portal.example.com  /mnt/drive  portalfs  user=alice,password_file=/etc/portalfs/alice,_netdev,x-systemd.automount  0 0

makes ``mount /mnt/drive`` work, and with ``x-systemd.automount`` systemd
mounts it on first access.  The helper starts the usual daemon and returns
once the mount is ready (or prints why it failed and exits 1, which mount(8)
reports).
"""

from __future__ import annotations

import sys

from mount import cli


def translate(argv: list[str]) -> list[str]:
    """mount(8)'s helper arguments → ``portalfs mount`` arguments."""
    positional: list[str] = []
    options: list[str] = []
    verbose = False
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "-o" and index + 1 < len(argv):
            options.append(argv[index + 1])
            index += 2
            continue
        if arg.startswith("-o") and len(arg) > 2:
            options.append(arg[2:])
        elif arg in ("-t", "-N") and index + 1 < len(argv):
            index += 2  # the type is ours by definition; namespaces are mount(8)'s business
            continue
        elif arg.startswith("-") and len(arg) > 1:
            verbose = verbose or "v" in arg  # -s (sloppy), -f (fake), -n (no mtab) need nothing from us
        else:
            positional.append(arg)
        index += 1
    if len(positional) != 2:
        raise SystemExit("usage: mount.portalfs URL MOUNTPOINT [-o OPTIONS]")
    spec, mountpoint = positional
    translated = ["mount", spec, mountpoint]
    for text in options:
        translated += ["-o", text]
    return (["-v"] if verbose else []) + translated


def main(argv: list[str] | None = None) -> int:
    return cli.main(translate(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
