"""The kernel-facing layer: the pyfuse3 adapter, the daemon and the command line.

This is the only package that may import ``pyfuse3``.
"""
