"""The FUSE-shaped, FUSE-free filesystem model and the portal API clients (``vfs.backends``)."""
